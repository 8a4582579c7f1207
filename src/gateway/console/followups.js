// An alert's follow-ups: the list of its children (GET /v1/alerts?parent_id=ID: resends,
// corrections, updates) with links, and the correction/update form (POST
// /v1/alerts/{id}/followup), offered once the alert has ended, when who it reached is final.

import { api, query, idempotencyKey } from "./api.js";
import { h, fill, chars } from "./dom.js";
import { RELATION, STATUS, number, when } from "./labels.js";
import { statusBadge, showFieldErrors, clearFieldErrors, errorSlot, errorId } from "./widgets.js";

// the statuses a follow-up may follow (src/gateway/followups.py: ENDED)
export const FOLLOWABLE = new Set(["completed", "cancelled", "failed"]);
const MARK = { correction: "[정정] ", update: "[추가 안내] " };
const MAX_TITLE = 50;

/** The list of the alert's follow-ups; `reload()` reads it again. */
export function childrenList(alertId) {
  const box = h("div", { id: "children" }, h("p", { class: "muted" }, "불러오는 중…"));

  async function reload() {
    try {
      const page = await api("GET", `/v1/alerts${query({ parent_id: alertId, limit: 50 })}`);
      fill(
        box,
        page.items.length
          ? h(
              "ul",
              { id: "children-list" },
              page.items.map((child) =>
                h(
                  "li",
                  { "data-id": child.id },
                  h("span", { class: "badge" }, RELATION[child.relation] || child.relation || "후속"),
                  " ",
                  h("a", { href: `#/alerts/${child.id}` }, child.title),
                  " ",
                  statusBadge(child.status),
                  ` ${when(child.created_at)} · 작성 ${child.author || "–"} · 대상 ${number(child.targeted)}`,
                ),
              ),
            )
          : h("p", { class: "muted" }, "후속 알림 없음"),
      );
    } catch (error) {
      fill(box, h("p", { class: "muted" }, "후속 알림을 불러오지 못했습니다: ", error.message));
    }
  }

  return { element: box, reload };
}

/** The correction/update form; `onCreated(answer)` is told of the follow-up it made. */
export function followUpForm(ctx, alertId, onCreated) {
  const correction = h("input", { type: "radio", name: "kind", id: "followup-correction", value: "correction", checked: true });
  const update = h("input", { type: "radio", name: "kind", id: "followup-update", value: "update" });
  const title = h("input", { id: "followup-title", name: "title", required: true, "aria-describedby": `followup-title-count ${errorId("title")}` });
  const titleCount = h("span", { id: "followup-title-count", class: "counter", "aria-live": "polite" });
  const body = h("textarea", { id: "followup-body", name: "body", rows: "5", required: true, "aria-describedby": errorId("body") });
  const audience = h(
    "select",
    { id: "followup-audience", name: "audience", "aria-describedby": errorId("audience") },
    h("option", { value: "delivered" }, "이 알림을 받은 모든 사람"),
    h("option", { value: "readers" }, "이 알림을 열어 본 사람"),
  );
  const mark = h("input", { type: "checkbox", id: "followup-mark", name: "mark", checked: true, "aria-describedby": errorId("mark") });
  const markLabel = h("span");
  const general = h("div", { class: "form-error", id: "followup-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "후속 알림 승인 요청");
  const result = h("div", { id: "followup-result", "aria-live": "polite" });

  const form = h(
    "form",
    { id: "followup-form", novalidate: true, onsubmit: send, oninput: counted, onchange: counted },
    h(
      "fieldset",
      { "aria-describedby": errorId("kind") },
      h("legend", {}, "종류"),
      h("label", { class: "check" }, correction, "정정 (잘못 알린 내용을 바로잡음)"),
      h("label", { class: "check" }, update, "추가 안내 (새 소식을 덧붙임)"),
      errorSlot("kind"),
    ),
    h("label", { for: "followup-title" }, "제목 ", titleCount),
    title,
    errorSlot("title"),
    h("label", { for: "followup-body" }, "본문"),
    body,
    errorSlot("body"),
    h("label", { for: "followup-audience" }, "받는 사람"),
    audience,
    errorSlot("audience"),
    h("label", { class: "check" }, mark, markLabel),
    errorSlot("mark"),
    general,
    h("div", { class: "actions" }, submit),
    result,
  );

  function kind() {
    return update.checked ? "update" : "correction";
  }

  function counted() {
    const prefix = MARK[kind()];
    fill(markLabel, `제목 앞에 ${prefix.trim()} 붙이기`);
    // the title as sent, mark included, against the dealer's 50 characters
    const sent = mark.checked && !title.value.startsWith(prefix.trim()) ? prefix + title.value : title.value;
    const n = chars(sent);
    fill(titleCount, `${n} / ${MAX_TITLE}자${mark.checked ? " (표시 포함)" : ""}`);
    titleCount.classList.toggle("over", n > MAX_TITLE);
  }

  async function send(event) {
    event.preventDefault();
    clearFieldErrors(form, general);
    fill(result);
    submit.disabled = true;
    try {
      const made = await api("POST", `/v1/alerts/${alertId}/followup`, {
        json: { kind: kind(), title: title.value, body: body.value, audience: audience.value, mark: mark.checked },
        headers: { "Idempotency-Key": idempotencyKey() },
      });
      fill(
        result,
        h(
          "p",
          { class: "notice", id: "followup-made" },
          `${kind() === "update" ? "추가 안내" : "정정"} 알림을 만들었습니다: 수신자 ${number(made.recipients)}명, 상태 ${STATUS[made.status] || made.status} · `,
          h("a", { href: `#/alerts/${made.id}` }, "후속 알림 보기"),
        ),
      );
      ctx.toast("후속 알림을 만들었습니다.");
      onCreated(made);
    } catch (error) {
      const shown = error.status === 422 ? error : { errors: [], problem: error.problem, message: error.message };
      const target = showFieldErrors(form, general, shown) || general;
      if (!target.matches("input, textarea, select")) target.setAttribute("tabindex", "-1");
      target.focus();
    } finally {
      submit.disabled = false;
    }
  }

  counted();
  return form;
}
