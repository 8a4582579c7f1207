// The alerts: newest first, filtered by status, or the ones waiting for my approval;
// re-read every few seconds so status, progress and read rate stay current.

import { api, query } from "./api.js";
import { h, fill } from "./dom.js";
import { STATUS, may, number, percent, when, progress } from "./labels.js";
import { statusBadge, categoryBadge, progressBar } from "./widgets.js";

const REFRESH_MS = 3000;
const PAGE = 50;

export async function renderAlerts(main, ctx, search) {
  const params = new URLSearchParams(search || "");
  const mine = params.get("view") === "mine";
  const status = mine ? "pending_approval" : params.get("status") || "";
  const approver = may(ctx.me.role, "approve");

  const filter = h(
    "select",
    { id: "status-filter", onchange: () => ctx.navigate(`#/alerts${query({ status: filter.value })}`) },
    h("option", { value: "" }, "모든 상태"),
    Object.entries(STATUS).map(([code, label]) => h("option", { value: code, selected: code === status && !mine }, label)),
  );
  const mineLink = approver
    ? h("a", { href: mine ? "#/alerts" : "#/alerts?view=mine", class: mine ? "chip active" : "chip", "aria-current": mine ? "page" : null }, "내 승인 대기", h("span", { class: "count", id: "mine-count" }))
    : null;
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true, onclick: loadMore }, "더 보기");
  const note = h("p", { class: "muted", "aria-live": "polite" });
  fill(
    main,
    h("div", { class: "title-row" }, h("h1", {}, mine ? "내 승인을 기다리는 알림" : "알림 목록"),
      may(ctx.me.role, "send") ? h("a", { href: "#/alerts/new", class: "button primary" }, "새 알림 작성") : null),
    h("div", { class: "filters" }, h("label", { for: "status-filter" }, "상태"), filter, mineLink),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "alerts" },
        h("caption", { class: "visually-hidden" }, "알림 목록, 최신순"),
        h("thead", {}, h("tr", {}, ["제목", "상태", "분류", "작성자", "진행률", "열람률", "작성 시각"].map((t) => h("th", { scope: "col" }, t)))),
        body,
      ),
    ),
    note,
    more,
  );

  let older = [];
  let cursor = null;
  let paged = false;
  let stopped = false;

  function wanted(alert) {
    return !mine || alert.author !== ctx.me.name;
  }

  function row(alert) {
    const waiting = approver && alert.status === "pending_approval" && alert.author !== ctx.me.name;
    return h(
      "tr",
      { dataset: { id: alert.id } },
      h("td", {}, h("a", { href: `#/alerts/${alert.id}` }, alert.title), waiting ? [" ", h("a", { href: `#/alerts/${alert.id}/review`, class: "chip" }, "검토")] : null),
      h("td", {}, statusBadge(alert.status)),
      h("td", {}, categoryBadge(alert.category)),
      h("td", {}, alert.author || "–"),
      h("td", {}, progressBar(progress(alert), `${alert.title} 진행률`), h("small", { class: "muted" }, `${number(alert.delivered + alert.failed)} / ${number(alert.targeted)}`)),
      h("td", {}, percent(alert.read_rate)),
      h("td", {}, when(alert.created_at)),
    );
  }

  async function refresh() {
    try {
      const page = await api("GET", `/v1/alerts${query({ limit: PAGE, status })}`);
      if (stopped) return;
      if (!paged) cursor = page.next_cursor;
      const items = page.items.filter(wanted).concat(older);
      fill(body, items.length ? items.map(row) : h("tr", {}, h("td", { colspan: "7", class: "muted" }, "알림이 없습니다.")));
      more.hidden = !cursor;
      fill(note, `${when(new Date())}에 갱신`);
      if (mine) fill(document.getElementById("mine-count"), ` ${page.items.filter(wanted).length}`);
    } catch (error) {
      if (!stopped) fill(note, "목록을 불러오지 못했습니다: ", error.message);
    }
  }

  async function loadMore() {
    const page = await api("GET", `/v1/alerts${query({ limit: PAGE, status, cursor })}`);
    paged = true;
    older = older.concat(page.items.filter(wanted));
    cursor = page.next_cursor;
    await refresh();
  }

  await refresh();
  const timer = setInterval(() => {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
