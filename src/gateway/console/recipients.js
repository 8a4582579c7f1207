// Who got the alert: one number's outcome (GET /v1/alerts/{id}/recipients/{no}), the failures
// as pages filtered by the dealer's code (GET .../recipients?outcome=failed), their CSV
// (`format=csv`: a link cannot set Accept), and a resend of the chosen failures
// (POST .../resend), whose audience is only known once the gateway has frozen it.

import { api, idempotencyKey } from "./api.js";
import { h, fill, confirmDialog } from "./dom.js";
import { CHANNEL, OUTCOME, NOT_SENT, STATUS, number, when } from "./labels.js";
import { showFieldErrors, clearFieldErrors, errorSlot, errorId } from "./widgets.js";

const PAGE = 50;
// the codes a resend leaves out unless asked (src/gateway/followups.py: FINAL_CODES)
const FINAL_CODES = [3018, 3019, 3020];

/** The look-up form: type a number, see its outcome and channel. */
export function recipientLookup(alertId) {
  const input = h("input", {
    id: "lookup-number",
    name: "recipient_no",
    type: "tel",
    inputmode: "numeric",
    autocomplete: "off",
    placeholder: "예: 010-1234-5678",
    "aria-describedby": errorId("recipient_no"),
  });
  const result = h("div", { id: "lookup-result", "aria-live": "polite" });
  const general = h("div", { class: "form-error", role: "alert", hidden: true });
  const form = h(
    "form",
    { id: "lookup-form", novalidate: true, onsubmit: lookUp },
    h("label", { for: "lookup-number" }, "수신자 번호"),
    h("div", { class: "inline-form" }, input, h("button", { type: "submit" }, "조회")),
    errorSlot("recipient_no"),
    general,
    result,
  );

  async function lookUp(event) {
    event.preventDefault();
    const number = input.value.replace(/[\s-]/g, "");
    clearFieldErrors(form, general);
    fill(result);
    if (!number) {
      showFieldErrors(form, general, { errors: [{ field: "recipient_no", message: "번호를 입력하세요." }], problem: {}, message: "" });
      input.focus();
      return;
    }
    try {
      shown(await api("GET", `/v1/alerts/${alertId}/recipients/${encodeURIComponent(number)}`));
    } catch (error) {
      if (error.status === 404) {
        fill(
          result,
          h("p", { class: "notice", id: "lookup-outcome" }, "이 알림의 수신 대상이 아닙니다"),
          h("p", { class: "muted" }, error.message),
        );
      } else if (error.status === 422) {
        showFieldErrors(form, general, error);
        input.focus();
      } else {
        fill(result, h("p", { class: "form-error" }, "조회하지 못했습니다: ", error.message));
      }
    }
  }

  function shown(found) {
    let detail;
    if (found.outcome === "delivered") detail = `${when(found.at)}에 전달`;
    else if (found.outcome === "failed") detail = `코드 ${found.code}: ${found.reason || "–"} (${when(found.at)})`;
    else if (found.outcome === "not_sent") detail = NOT_SENT[found.reason] || found.reason || "–";
    else detail = found.code ? `임시 응답 ${found.code}: 다시 보낼 차례를 기다립니다` : "아직 정산되지 않았습니다";
    fill(
      result,
      h(
        "dl",
        { class: "facts", id: "lookup-facts" },
        h("dt", {}, "번호"), h("dd", {}, found.recipient_no),
        h("dt", {}, "결과"), h("dd", { id: "lookup-outcome", class: `outcome-${found.outcome}` }, OUTCOME[found.outcome] || found.outcome),
        h("dt", {}, "내용"), h("dd", { id: "lookup-detail" }, detail),
        h("dt", {}, "채널"), h("dd", { id: "lookup-channel" }, found.channel ? CHANNEL[found.channel] || found.channel : "–"),
        h("dt", {}, "배치"), h("dd", { class: "detail" }, found.batch_id || "–"),
      ),
    );
  }

  return form;
}

/**
 * The failures table with its code filter, paging, CSV link and (for operators) the resend
 * button; `onResent(answer)` is told of each follow-up the resend created.
 */
export function failuresPanel(ctx, alertId, { canResend, onResent }) {
  const codes = h("input", {
    id: "failure-codes",
    name: "code",
    inputmode: "numeric",
    placeholder: "예: 3018, 5000",
    "aria-describedby": `failure-codes-hint ${errorId("code")}`,
  });
  const general = h("div", { class: "form-error", role: "alert", hidden: true });
  const filter = h(
    "form",
    { id: "failures-filter", class: "filters", novalidate: true, onsubmit: (event) => { event.preventDefault(); load(); } },
    h("label", { for: "failure-codes" }, "사업자 코드"),
    codes,
    h("button", { type: "submit" }, "적용"),
    h("span", { id: "failure-codes-hint", class: "muted" }, "쉼표로 여러 개; 비우면 모든 실패"),
    errorSlot("code"),
    general,
  );
  const csv = h("a", { id: "failures-csv", class: "button", download: "" }, "CSV로 내려받기");
  const resend = canResend ? h("button", { type: "button", id: "resend", onclick: resendChosen }, "실패한 수신자에게 재발송") : null;
  const rows = h("tbody");
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "failures-table" },
      h("thead", {}, h("tr", {}, ["번호", "코드", "사유", "채널", "시각"].map((t) => h("th", { scope: "col" }, t)))),
      rows,
    ),
  );
  const state = h("p", { class: "muted", id: "failures-state", "aria-live": "polite" });
  const more = h("button", { type: "button", id: "failures-more", hidden: true, onclick: () => page(next) }, "더 보기");
  const answer = h("div", { id: "resend-result", "aria-live": "polite" });
  const panel = h("div", {}, filter, h("div", { class: "actions" }, csv, resend), table, state, more, answer);

  let next = null;
  let chosen = [];
  let asked = 0;

  function parseCodes() {
    const parts = codes.value.split(/[\s,]+/).filter(Boolean);
    const bad = parts.filter((p) => !/^\d{1,5}$/.test(p));
    if (bad.length) return { error: `숫자 코드만 쓸 수 있습니다: ${bad.join(", ")}` };
    return { codes: [...new Set(parts.map(Number))].sort((a, b) => a - b) };
  }

  function listQuery(extra) {
    const search = new URLSearchParams({ outcome: "failed", ...extra });
    for (const code of chosen) search.append("code", code);
    return `?${search}`;
  }

  async function load() {
    clearFieldErrors(filter, general);
    const parsed = parseCodes();
    if (parsed.error) {
      showFieldErrors(filter, general, { errors: [{ field: "code", message: parsed.error }], problem: {}, message: "" });
      codes.focus();
      return;
    }
    chosen = parsed.codes;
    csv.setAttribute("href", `/v1/alerts/${alertId}/recipients${listQuery({ format: "csv" })}`);
    rows.replaceChildren();
    await page(null);
  }

  async function page(cursor) {
    const mine = ++asked;
    more.disabled = true;
    try {
      const found = await api("GET", `/v1/alerts/${alertId}/recipients${listQuery({ limit: PAGE })}${cursor ? `&${new URLSearchParams({ cursor })}` : ""}`);
      if (mine !== asked) return;
      for (const r of found.items) {
        rows.appendChild(
          h(
            "tr",
            { "data-number": r.recipient_no },
            h("td", {}, r.recipient_no),
            h("td", { class: "code" }, r.code ?? "–"),
            h("td", {}, r.reason || "–"),
            h("td", {}, r.channel ? CHANNEL[r.channel] || r.channel : "–"),
            h("td", {}, when(r.at)),
          ),
        );
      }
      next = found.next_cursor;
      more.hidden = !next;
      fill(state, rows.children.length ? `${number(rows.children.length)}명 표시${next ? " (더 있음)" : ""}` : "실패한 수신자가 없습니다.");
    } catch (error) {
      if (mine !== asked) return;
      if (error.status === 422) showFieldErrors(filter, general, error);
      else fill(state, "실패 목록을 불러오지 못했습니다: ", error.message);
    } finally {
      more.disabled = false;
    }
  }

  async function resendChosen() {
    const parsed = parseCodes();
    if (parsed.error) {
      showFieldErrors(filter, general, { errors: [{ field: "code", message: parsed.error }], problem: {}, message: "" });
      codes.focus();
      return;
    }
    const which = parsed.codes.length
      ? `사업자 코드 ${parsed.codes.join(", ")}로 실패한 수신자`
      : `${FINAL_CODES.join("·")}(카카오톡을 쓰지 않거나 차단)을 뺀 모든 실패 수신자`;
    const question =
      `${which}에게 이 알림을 다시 보낼까요? 몇 명에게 갈지는 재발송 알림을 만들 때 정해지며, ` +
      "재발송도 하나의 알림으로 승인을 거칩니다.";
    if (!(await confirmDialog(question, "재발송"))) return;
    resend.disabled = true;
    // a fresh key per click: a retried request of this click is the same resend, a new click a new one
    const key = idempotencyKey();
    try {
      const made = await api("POST", `/v1/alerts/${alertId}/resend`, {
        json: parsed.codes.length ? { outcomes: ["failed"], codes: parsed.codes } : { outcomes: ["failed"] },
        headers: { "Idempotency-Key": key },
      });
      fill(
        answer,
        h(
          "p",
          { class: "notice", id: "resend-made" },
          "재발송 알림을 만들었습니다: 수신자 ",
          h("strong", { id: "resend-recipients" }, `${number(made.recipients)}명`),
          ", 상태 ",
          h("strong", { id: "resend-status" }, STATUS[made.status] || made.status),
          " · ",
          h("a", { href: `#/alerts/${made.id}` }, "재발송 알림 보기"),
        ),
      );
      ctx.toast(`재발송 알림을 만들었습니다 (${number(made.recipients)}명).`);
      onResent(made);
    } catch (error) {
      fill(answer, h("p", { class: "form-error", id: "resend-error" }, "재발송하지 못했습니다: ", error.message));
    } finally {
      resend.disabled = false;
    }
  }

  return { element: panel, reload: load };
}
