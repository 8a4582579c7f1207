// The audit log: who did what, newest first, filtered by alert, actor and action.

import { api, query } from "./api.js";
import { h, fill } from "./dom.js";
import { ACTION, when } from "./labels.js";

export async function renderAudit(main, ctx, search) {
  const params = new URLSearchParams(search || "");
  const alertId = h("input", { id: "audit-alert", name: "alert_id", value: params.get("alert_id") || "", placeholder: "알림 ID" });
  const actor = h("input", { id: "audit-actor", name: "actor", value: params.get("actor") || "", placeholder: "이름" });
  const action = h(
    "select",
    { id: "audit-action", name: "action" },
    h("option", { value: "" }, "모든 동작"),
    Object.entries(ACTION).map(([code, label]) => h("option", { value: code, selected: code === params.get("action") }, `${label} (${code})`)),
  );
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true, onclick: () => load(true) }, "더 보기");
  const problem = h("p", { class: "form-error", role: "alert", hidden: true });

  fill(
    main,
    h("h1", {}, "감사 기록"),
    h(
      "form",
      { class: "filters", onsubmit: apply },
      h("label", { for: "audit-alert" }, "알림"), alertId,
      h("label", { for: "audit-actor" }, "누가"), actor,
      h("label", { for: "audit-action" }, "무엇을"), action,
      h("button", { type: "submit" }, "찾기"),
    ),
    problem,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "audit-table" },
        h("thead", {}, h("tr", {}, ["시각", "누가", "무엇을", "알림", "내용"].map((t) => h("th", { scope: "col" }, t)))),
        body,
      ),
    ),
    more,
  );

  function apply(event) {
    event.preventDefault();
    ctx.navigate(`#/audit${query({ alert_id: alertId.value.trim(), actor: actor.value.trim(), action: action.value })}`);
  }

  let cursor = null;
  async function load(next) {
    problem.hidden = true;
    try {
      const filters = { alert_id: params.get("alert_id"), actor: params.get("actor"), action: params.get("action"), limit: 50 };
      const page = await api("GET", `/v1/audit${query(next ? { ...filters, cursor } : filters)}`);
      const rows = page.items.map((row) =>
        h(
          "tr",
          {},
          h("td", {}, when(row.at)),
          h("td", {}, row.actor),
          h("td", {}, ACTION[row.action] || row.action),
          h("td", {}, row.alert_id ? h("a", { href: `#/alerts/${row.alert_id}` }, row.alert_id.slice(0, 8)) : "–"),
          h("td", { class: "detail" }, JSON.stringify(row.detail)),
        ),
      );
      if (next) body.append(...rows);
      else fill(body, rows.length ? rows : h("tr", {}, h("td", { colspan: "5", class: "muted" }, "기록이 없습니다.")));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      fill(problem, "감사 기록을 불러오지 못했습니다: ", error.message);
      problem.hidden = false;
    }
  }

  await load(false);
  return null;
}
