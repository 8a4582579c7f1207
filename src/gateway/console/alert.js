// One alert: live progress from the server-sent events (GET /v1/alerts/{id}/events) with a
// bar and the send rate over time, its estimated end and deadline, delivery by channel and
// reading from GET /v1/alerts/{id}/stats as charts, the recipient look-up, the failures
// with their CSV and resend, follow-ups, test sends, pause, resume and cancel behind
// confirmations, and the alert's audit trail.

import { api, query } from "./api.js";
import { h, fill, confirmDialog } from "./dom.js";
import { ACTION, APPROVAL, RELATION, TERMINAL, may, number, percent, when, clock, progress } from "./labels.js";
import { statusBadge, categoryBadge, progressBar } from "./widgets.js";
import { lineChart } from "./chart.js";
import { paceFacts, channelFacts } from "./delivery.js";
import { recipientLookup, failuresPanel } from "./recipients.js";
import { FOLLOWABLE, childrenList, followUpForm } from "./followups.js";

const STATS_MS = 5000;
const RATE_POINTS = 120;
const SENDABLE = new Set(["pending_approval", "scheduled", "queued"]);
const PAUSABLE = new Set(["scheduled", "queued", "sending"]);

export async function renderAlert(main, ctx, id) {
  let alert = await api("GET", `/v1/alerts/${id}`);
  const operator = may(ctx.me.role, "send");
  const approver = may(ctx.me.role, "approve");

  const head = h("div");
  const figures = h("div", { id: "progress-card" });
  const rateBox = h("div");
  const actions = h("div", { class: "actions" });
  const stream = h("p", { class: "muted", id: "stream-state", "aria-live": "polite" });
  const statsBox = h("div", { id: "stats" });
  const tests = h("div", { id: "tests" });
  const trail = h("div", { id: "trail" });
  const pace = h("div");
  const channelsBox = h("div");
  const children = childrenList(id);
  const failures = failuresPanel(ctx, id, { canResend: operator && !alert.test_of, onResent: () => children.reload() });
  const followBox = h("div");
  let followForm = null;

  fill(
    main,
    head,
    h("section", { class: "card" }, h("h2", {}, "발송 진행"), figures, stream, rateBox, actions),
    h("section", { class: "card", id: "delivery" }, h("h2", {}, "예상 완료와 기한"), pace, h("h3", {}, "채널별 전달"), channelsBox),
    h("section", { class: "card" }, h("h2", {}, "전달과 열람"), statsBox),
    h("section", { class: "card", id: "lookup" }, h("h2", {}, "수신자 조회"), recipientLookup(id)),
    h("section", { class: "card", id: "failures" }, h("h2", {}, "실패 목록과 재발송"), failures.element),
    h("section", { class: "card", id: "followups" }, h("h2", {}, "후속 알림 (정정·추가 안내·재발송)"), children.element, followBox),
    h("section", { class: "card" }, h("h2", {}, "시험 발송"), tests),
    may(ctx.me.role, "audit") ? h("section", { class: "card" }, h("h2", {}, "감사 기록"), trail) : null,
  );

  const rates = [];
  let last = null;

  function draw() {
    fill(
      head,
      h("div", { class: "title-row" }, h("h1", { id: "alert-title" }, alert.title), statusBadge(alert.status)),
      h(
        "p",
        { class: "muted" },
        categoryBadge(alert.category),
        ` 작성 ${alert.author || "–"} · ${when(alert.created_at)} · ${APPROVAL[alert.approval] || alert.approval}`,
        alert.decided_by ? ` · 결정 ${alert.decided_by} (${when(alert.decided_at)})` : "",
      ),
      alert.parent_id
        ? h("p", { id: "parent-link" }, `${RELATION[alert.relation] || "후속"} 알림 · `, h("a", { href: `#/alerts/${alert.parent_id}` }, "원래 알림 보기"))
        : null,
      alert.status_reason ? h("p", { class: "notice" }, alert.status_reason) : null,
      alert.status === "pending_approval" && approver && alert.author !== ctx.me.name
        ? h("p", {}, h("a", { href: `#/alerts/${id}/review`, class: "button primary", id: "review-link" }, "승인 검토하기"))
        : null,
      alert.status === "pending_approval" && alert.author === ctx.me.name
        ? h("p", { class: "notice", id: "own-alert" }, "본인이 작성한 알림입니다. 다른 승인자의 승인을 기다립니다.")
        : null,
      h("p", { class: "message-text" }, alert.body),
    );
    fill(
      figures,
      progressBar(progress(alert), "발송 진행률"),
      h(
        "dl",
        { class: "facts inline" },
        h("dt", {}, "대상"), h("dd", { id: "fig-targeted" }, number(alert.targeted)),
        h("dt", {}, "전달"), h("dd", { id: "fig-delivered" }, number(alert.delivered)),
        h("dt", {}, "실패"), h("dd", { id: "fig-failed" }, number(alert.failed)),
        h("dt", {}, "남음"), h("dd", { id: "fig-pending" }, number(alert.pending)),
        h("dt", {}, "열람률"), h("dd", { id: "fig-read-rate" }, percent(alert.read_rate)),
        h("dt", {}, "시작"), h("dd", {}, when(alert.started_at)),
        h("dt", {}, "끝"), h("dd", {}, when(alert.completed_at || alert.cancelled_at)),
      ),
    );
    fill(pace, paceFacts(alert));
    const current = rates.length ? rates[rates.length - 1].y : null;
    fill(
      rateBox,
      h("p", {}, "발송 속도 ", h("strong", { id: "send-rate" }, current === null ? "–" : `초당 ${number(Math.round(current))}건`)),
      lineChart(rates, { label: "시간에 따른 발송 속도 (건/초)", format: (v) => number(Math.round(v)), xFormat: clock }),
    );
    fill(
      actions,
      operator && SENDABLE.has(alert.status)
        ? h("button", { type: "button", id: "test-send", onclick: testSend }, "시험 발송")
        : null,
      operator && PAUSABLE.has(alert.status)
        ? h("button", { type: "button", id: "pause", onclick: () => control("pause") }, "일시정지")
        : null,
      operator && alert.status === "paused"
        ? h("button", { type: "button", class: "primary", id: "resume", onclick: () => control("resume") }, "재개")
        : null,
      operator && !TERMINAL.has(alert.status)
        ? h("button", { type: "button", class: "danger", id: "cancel", onclick: cancel }, "발송 취소")
        : null,
    );
  }

  function observe(next) {
    const now = Date.now();
    const done = next.delivered + next.failed;
    if (last && now > last.at) {
      const rate = ((done - last.done) * 1000) / (now - last.at);
      if (next.status === "sending" || rate > 0) {
        rates.push({ t: new Date(now), y: Math.max(0, rate) });
        if (rates.length > RATE_POINTS) rates.shift();
      }
    }
    last = { at: now, done };
    const changed = next.status !== alert.status;
    alert = { ...next, channels: next.channels || alert.channels };
    draw();
    if (changed) {
      loadTrail();
      drawFollowUp();
    }
  }

  function drawFollowUp() {
    if (!operator || alert.test_of) {
      fill(followBox);
    } else if (FOLLOWABLE.has(alert.status)) {
      followForm = followForm || followUpForm(ctx, id, () => children.reload());
      fill(followBox, h("h3", {}, "정정·추가 안내 보내기"), followForm);
    } else {
      fill(followBox, h("p", { class: "muted", id: "followup-later" }, "발송이 끝나면(완료·취소·실패) 받은 사람이나 열어 본 사람에게 정정·추가 안내를 보낼 수 있습니다."));
    }
  }

  async function testSend() {
    if (!(await confirmDialog("tester 태그가 붙은 구독자에게 이 메시지를 시험 발송할까요?", "시험 발송"))) return;
    try {
      const sent = await api("POST", `/v1/alerts/${id}/test`);
      ctx.toast(`시험 발송: ${number(sent.recipients)}명에게 보냅니다.`);
      loadTests();
    } catch (error) {
      ctx.toast(`시험 발송하지 못했습니다: ${error.message}`);
    }
  }

  async function control(action) {
    const question = action === "pause"
      ? "발송을 일시정지할까요? 재개할 때까지 더 보내지 않습니다."
      : "발송을 재개할까요? 멈춘 곳부터, 수신자마다 한 번씩 보냅니다.";
    if (!(await confirmDialog(question, action === "pause" ? "일시정지" : "재개"))) return;
    try {
      observe(await api("POST", `/v1/alerts/${id}/${action}`));
      ctx.toast(action === "pause" ? "일시정지했습니다." : "재개했습니다.");
    } catch (error) {
      ctx.toast(`${action === "pause" ? "일시정지" : "재개"}하지 못했습니다: ${error.message}`);
    }
  }

  async function cancel() {
    if (!(await confirmDialog("이 알림의 발송을 취소할까요? 아직 보내지 않은 수신자에게는 보내지 않습니다.", "발송 취소"))) return;
    try {
      observe(await api("POST", `/v1/alerts/${id}/cancel`));
      ctx.toast("발송을 취소했습니다.");
      loadTrail();
    } catch (error) {
      ctx.toast(`취소하지 못했습니다: ${error.message}`);
    }
  }

  async function loadStats() {
    let stats;
    try {
      // the stats for reads by channel and the fallback, the alert for what each channel settled
      const [read, fresh] = await Promise.all([api("GET", `/v1/alerts/${id}/stats`), api("GET", `/v1/alerts/${id}`)]);
      stats = read;
      if (fresh.channels) alert = { ...alert, channels: fresh.channels };
    } catch (error) {
      fill(statsBox, h("p", { class: "muted" }, "통계를 불러오지 못했습니다: ", error.message));
      return;
    }
    fill(channelsBox, channelFacts(alert.channels, stats));
    let readers = 0;
    const cumulative = stats.series.map((point) => {
      readers += point.new_readers;
      return { t: new Date(point.minute), y: readers };
    });
    const readRate = stats.series.length && stats.delivered
      ? cumulative.map((p) => ({ t: p.t, y: p.y / stats.delivered }))
      : [];
    const reasons = Object.entries(stats.failed_by_reason);
    fill(
      statsBox,
      h(
        "dl",
        { class: "facts inline" },
        h("dt", {}, "전달"), h("dd", {}, number(stats.delivered)),
        h("dt", {}, "실패"), h("dd", {}, number(stats.failed)),
        h("dt", {}, "열람자"), h("dd", { id: "stat-readers" }, number(stats.readers)),
        h("dt", {}, "전달받아 연 사람"), h("dd", {}, number(stats.forwarded_readers)),
        h("dt", {}, "열람률"), h("dd", { id: "stat-read-rate" }, percent(stats.read_rate)),
        h("dt", {}, "공유율"), h("dd", {}, percent(stats.forward_rate)),
      ),
      h("h3", {}, "열람률 추이 (현재 전달 수 기준)"),
      lineChart(readRate, { label: "시간에 따른 열람률", format: percent, xFormat: clock }),
      h("h3", {}, "분당 열람"),
      lineChart(stats.series.map((p) => ({ t: new Date(p.minute), y: p.reads })), { label: "분당 열람 수", format: (v) => number(Math.round(v)), xFormat: clock }),
      h("h3", {}, "실패 사유"),
      reasons.length
        ? h("table", { class: "compact" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "사업자 코드"), h("th", { scope: "col" }, "수신자"))),
            h("tbody", {}, reasons.map(([code, n]) => h("tr", {}, h("td", {}, code), h("td", {}, number(n))))))
        : h("p", { class: "muted" }, "실패 없음"),
    );
  }

  async function loadTests() {
    try {
      const page = await api("GET", `/v1/alerts${query({ test_of: id, limit: 20 })}`);
      fill(
        tests,
        page.items.length
          ? h("ul", {}, page.items.map((t) => h("li", {}, h("a", { href: `#/alerts/${t.id}` }, when(t.created_at)), " ", statusBadge(t.status), ` 대상 ${number(t.targeted)} · 전달 ${number(t.delivered)}`)))
          : h("p", { class: "muted" }, "시험 발송 없음"),
      );
    } catch (error) {
      fill(tests, h("p", { class: "muted" }, error.message));
    }
  }

  async function loadTrail() {
    if (!may(ctx.me.role, "audit")) return;
    const page = await api("GET", `/v1/audit${query({ alert_id: id, limit: 100 })}`);
    fill(
      trail,
      h(
        "table",
        { class: "compact", id: "trail-table" },
        h("thead", {}, h("tr", {}, ["시각", "누가", "무엇을", "내용"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, page.items.map((row) => h("tr", {}, h("td", {}, when(row.at)), h("td", {}, row.actor), h("td", {}, ACTION[row.action] || row.action), h("td", { class: "detail" }, JSON.stringify(row.detail))))),
      ),
    );
  }

  draw();
  drawFollowUp();
  loadStats();
  loadTests();
  loadTrail();
  failures.reload();
  children.reload();

  let source = null;
  let statsTimer = null;
  if (!TERMINAL.has(alert.status)) {
    source = new EventSource(`/v1/alerts/${id}/events`);
    fill(stream, "실시간 연결 중…");
    source.addEventListener("open", () => fill(stream, "실시간으로 갱신 중"));
    source.addEventListener("progress", (event) => observe(JSON.parse(event.data)));
    source.addEventListener("end", (event) => {
      observe(JSON.parse(event.data));
      source.close();
      clearInterval(statsTimer);
      fill(stream, "발송이 끝났습니다.");
      loadStats();
      loadTrail();
      failures.reload();
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) fill(stream, "연결이 끊겼습니다. 다시 연결하는 중…");
    });
    statsTimer = setInterval(() => {
      if (!document.hidden) loadStats();
    }, STATS_MS);
  }
  return () => {
    if (source) source.close();
    clearInterval(statsTimer);
  };
}
