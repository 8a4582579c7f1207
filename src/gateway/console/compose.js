// Compose: the alert's fields with the dealer's counts, the audience with its reach kept
// current by POST /v1/alerts:preview, the message as recipients will see it (and the SMS/LMS
// those KakaoTalk refuses get, with its fallback switch), and submit
// (POST /v1/alerts), after which it waits for an approver. A refusal's `errors` are shown
// next to the fields they name.

import { api, idempotencyKey } from "./api.js";
import { h, fill, chars } from "./dom.js";
import { CATEGORY, WARNING, number, when, duration } from "./labels.js";
import { kakaoMessage, smsMessage, showFieldErrors, clearFieldErrors, errorSlot, errorId } from "./widgets.js";

// the dealer's limits (src/common/kakao_limits.py); allim adds its own fifth button
const MAX_TITLE = 50;
const MAX_BODY = 1300;
const MAX_BUTTONS = 4;
const PREVIEW_DELAY_MS = 400;

export async function renderCompose(main, ctx) {
  const counts = await api("GET", "/v1/subscribers/counts");
  const districts = counts.districts.map((d) => d.district).filter((d) => d !== null);

  const title = h("input", { id: "title", name: "title", required: true, "aria-describedby": `title-count ${errorId("title")}` });
  const titleCount = h("span", { id: "title-count", class: "counter", "aria-live": "polite" });
  const body = h("textarea", { id: "body", name: "body", rows: "8", required: true, "aria-describedby": `body-count ${errorId("body")}` });
  const bodyCount = h("span", { id: "body-count", class: "counter", "aria-live": "polite" });
  const category = h(
    "select",
    { id: "category", name: "category", "aria-describedby": errorId("category") },
    Object.entries(CATEGORY).map(([code, label]) => h("option", { value: code, selected: code === "public" }, label)),
  );
  const buttonRows = h("div", { class: "button-rows" });
  const addButton = h("button", { type: "button", onclick: () => addButtonRow() }, "버튼 추가");

  const everyone = h("input", { type: "radio", name: "audience-kind", id: "audience-all", value: "all", checked: true });
  const chosen = h("input", { type: "radio", name: "audience-kind", id: "audience-some", value: "some" });
  const districtBoxes = districts.map((district, i) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "district", value: district, id: `district-${i}` }), district),
  );
  const tags = h("input", { id: "tags", name: "tags", placeholder: "예: bus, senior", "aria-describedby": errorId("audience.tags") });
  const sendAt = h("input", { id: "send-at", name: "send_at", type: "datetime-local", "aria-describedby": errorId("send_at") });
  const expiresAt = h("input", { id: "expires-at", name: "expires_at", type: "datetime-local", "aria-describedby": errorId("expires_at") });

  const general = h("div", { class: "form-error", id: "compose-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "승인 요청");
  const reach = h("p", { id: "reach", class: "reach", "aria-live": "polite" }, "수신자 수를 계산하는 중…");
  const reachTable = h("div", { id: "reach-districts" });
  const messageBox = h("div", { id: "message-preview" });
  const smsBox = h("div", { id: "sms-box" });
  // until the operator touches it, the deployment decides by category (and the box shows it)
  const fallbackOn = h("input", { type: "checkbox", id: "fallback-enabled", name: "fallback_enabled", "aria-describedby": errorId("fallback") });
  const fallbackReplace = h("input", { type: "checkbox", id: "fallback-replace", name: "fallback_replace", "aria-describedby": `fallback-replace-hint ${errorId("fallback")}` });
  let fallbackTouched = false;
  fallbackOn.addEventListener("change", () => {
    fallbackTouched = true;
  });
  const warnings = h("ul", { id: "warnings", class: "warnings" });
  const estimate = h("p", { id: "estimate", class: "muted" });

  const form = h(
    "form",
    { class: "compose", id: "compose-form", novalidate: true, onsubmit: onSubmit, oninput: schedulePreview, onchange: schedulePreview },
    h(
      "section",
      { class: "card" },
      h("h2", {}, "내용"),
      h("label", { for: "title" }, "제목 ", titleCount),
      title,
      errorSlot("title"),
      h("label", { for: "body" }, "본문 ", bodyCount),
      body,
      errorSlot("body"),
      h("label", { for: "category" }, "분류"),
      category,
      errorSlot("category"),
      h("fieldset", {}, h("legend", {}, `버튼 (최대 ${MAX_BUTTONS}개, '자세히 보기'는 자동으로 붙습니다)`), buttonRows, addButton, errorSlot("buttons")),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "받는 사람"),
      h(
        "fieldset",
        { "aria-describedby": errorId("audience") },
        h("legend", {}, "대상"),
        h("label", { class: "check" }, everyone, "전체 구독자"),
        h("label", { class: "check" }, chosen, "지역·태그로 선택"),
        errorSlot("audience"),
      ),
      h(
        "fieldset",
        { id: "districts", "aria-describedby": errorId("audience.districts") },
        h("legend", {}, "지역 (구)"),
        h("div", { class: "checks" }, districtBoxes),
        errorSlot("audience.districts"),
      ),
      h("label", { for: "tags" }, "태그 (쉼표로 구분)"),
      tags,
      errorSlot("audience.tags"),
      reach,
      reachTable,
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "일정"),
      h("label", { for: "send-at" }, "발송 예약 (비우면 승인 즉시)"),
      sendAt,
      errorSlot("send_at"),
      h("label", { for: "expires-at" }, "만료 (이때까지 못 보낸 수신자에게는 보내지 않음)"),
      expiresAt,
      errorSlot("expires_at"),
      // issue 16 (delivery control) adds a deadline; its field goes here when the API has it
      estimate,
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "미리 보기"),
      messageBox,
      h("h3", {}, "카카오톡으로 받지 못한 사람에게 (문자)"),
      h(
        "fieldset",
        { id: "fallback" },
        h("legend", {}, "문자(SMS·LMS) 대체 발송"),
        h("label", { class: "check" }, fallbackOn, "카카오톡으로 받지 못한 사람에게 문자로 보내기"),
        h("label", { class: "check" }, fallbackReplace, "이모지 등 바꾸기"),
        h("p", { class: "muted", id: "fallback-replace-hint" }, "문자로 보낼 수 없는 글자(이모지 등)가 있으면 거절하는 대신 ?로 바꿔 보냅니다."),
        errorSlot("fallback"),
      ),
      smsBox,
      warnings,
      h("p", { class: "muted" }, "시험 발송은 승인 요청 후 알림 화면에서 할 수 있습니다 (tester 태그 구독자에게)."),
    ),
    general,
    h("div", { class: "actions sticky" }, submit, h("a", { href: "#/alerts", class: "button" }, "취소")),
  );
  fill(main, h("h1", {}, "알림 작성"), form);

  function addButtonRow(name = "", link = "") {
    const index = buttonRows.children.length;
    if (index >= MAX_BUTTONS) return;
    const row = h(
      "div",
      { class: "button-row" },
      h("label", { for: `button-${index}-name` }, `버튼 ${index + 1} 이름`),
      h("input", { id: `button-${index}-name`, class: "button-name", value: name, "aria-describedby": errorId(`buttons[${index}].name`) }),
      errorSlot(`buttons[${index}].name`),
      h("label", { for: `button-${index}-link` }, `버튼 ${index + 1} 링크`),
      h("input", { id: `button-${index}-link`, class: "button-link", type: "url", value: link, placeholder: "https://", "aria-describedby": errorId(`buttons[${index}].link`) }),
      errorSlot(`buttons[${index}].link`),
      h("button", { type: "button", onclick: () => { row.remove(); renumber(); schedulePreview(); } }, `버튼 ${index + 1} 삭제`),
    );
    buttonRows.appendChild(row);
    addButton.disabled = buttonRows.children.length >= MAX_BUTTONS;
  }

  function renumber() {
    const rows = [...buttonRows.children].map((row) => [row.querySelector(".button-name").value, row.querySelector(".button-link").value]);
    buttonRows.replaceChildren();
    for (const [name, link] of rows) addButtonRow(name, link);
    addButton.disabled = buttonRows.children.length >= MAX_BUTTONS;
  }

  function counter(el, text, limit) {
    const n = chars(text);
    fill(el, `${n} / ${limit}자`);
    el.classList.toggle("over", n > limit);
  }

  function draft() {
    const buttons = [...buttonRows.children]
      .map((row) => ({ name: row.querySelector(".button-name").value, link: row.querySelector(".button-link").value }))
      .filter((b) => b.name || b.link);
    let audience = "all";
    if (chosen.checked) {
      const picked = [...form.querySelectorAll("input[name=district]:checked")].map((box) => box.value);
      const tagList = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
      audience = { districts: picked, tags: tagList };
    }
    const result = { title: title.value, body: body.value, category: category.value, buttons, audience };
    if (sendAt.value) result.send_at = new Date(sendAt.value).toISOString();
    if (expiresAt.value) result.expires_at = new Date(expiresAt.value).toISOString();
    const fallback = {};
    if (fallbackTouched) fallback.enabled = fallbackOn.checked;
    if (fallbackReplace.checked) fallback.unencodable = "replace";
    if (Object.keys(fallback).length) result.fallback = fallback;
    return result;
  }

  function updateCounters() {
    counter(titleCount, title.value, MAX_TITLE);
    counter(bodyCount, body.value, MAX_BODY);
    form.querySelector("#districts").disabled = !chosen.checked;
    tags.disabled = !chosen.checked;
  }

  let timer = null;
  let asked = 0;
  function schedulePreview() {
    asked += 1; // an answer to an earlier draft is stale once the draft changed
    updateCounters();
    clearTimeout(timer);
    timer = setTimeout(preview, PREVIEW_DELAY_MS);
  }

  async function preview() {
    const mine = ++asked;
    const request = draft();
    // an empty title or body is refused; the reach is still worth showing while typing
    const probe = { ...request, title: request.title.trim() || "제목", body: request.body.trim() || "본문" };
    try {
      const answer = await api("POST", "/v1/alerts:preview", { json: probe });
      if (mine !== asked) return;
      clearFieldErrors(form, general);
      showPreview(answer, request);
    } catch (error) {
      if (mine !== asked) return;
      if (error.status === 422) {
        showFieldErrors(form, general, error);
        fill(reach, "수신자: 계산할 수 없음 (입력을 고치세요)");
      } else {
        fill(reach, "미리 보기를 불러오지 못했습니다: ", error.message);
      }
    }
  }

  function showPreview(answer, request) {
    fill(reach, "수신자 ", h("strong", { id: "recipient-count" }, number(answer.recipients)), "명");
    fill(
      reachTable,
      h(
        "table",
        { class: "compact" },
        h("caption", {}, "지역별 수신자"),
        h("tbody", {}, answer.by_district.map((d) => h("tr", {}, h("th", { scope: "row" }, d.district ?? "지역 없음"), h("td", {}, number(d.recipients))))),
      ),
    );
    const message = answer.message;
    // the dealer's counts of the message as sent (after the gateway trims it)
    fill(titleCount, `${request.title ? message.title_chars.length : 0} / ${message.title_chars.limit}자`);
    fill(bodyCount, `${request.body ? message.body_chars.length : 0} / ${message.body_chars.limit}자`);
    titleCount.classList.toggle("over", message.title_chars.length > message.title_chars.limit);
    bodyCount.classList.toggle("over", message.body_chars.length > message.body_chars.limit);
    fill(messageBox, kakaoMessage({ ...message, title: request.title || "(제목)", body: request.body || "(본문)" }));
    fill(smsBox, smsMessage(answer.sms));
    if (!fallbackTouched) fallbackOn.checked = answer.sms !== null && answer.sms !== undefined;
    fallbackReplace.disabled = !fallbackOn.checked;
    fill(warnings, answer.warnings.map((w) => h("li", { class: "warning" }, h("strong", {}, WARNING[w.code] || w.code), ": ", w.message)));
    const est = answer.estimate;
    fill(
      estimate,
      `시작 ${when(est.starts_at)}`,
      est.seconds !== null ? ` · 예상 소요 ${duration(est.seconds)} (초당 ${number(est.rate_messages_per_second)}건) · 예상 종료 ${when(est.ends_at)}` : " · 발송 속도 제한 없음: 사업자가 받는 만큼 빠르게 보냅니다",
    );
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearTimeout(timer);
    asked += 1; // a preview still on its way must not clear what the submit shows
    submit.disabled = true;
    try {
      const accepted = await api("POST", "/v1/alerts", { json: draft(), headers: { "Idempotency-Key": idempotencyKey() } });
      ctx.toast(accepted.status === "pending_approval" ? "승인 요청했습니다. 승인자가 검토합니다." : "접수했습니다.");
      ctx.navigate(`#/alerts/${accepted.id}`);
    } catch (error) {
      const shown = error.status === 422 ? error : { errors: [], problem: error.problem, message: error.message };
      const target = showFieldErrors(form, general, shown) || general;
      if (!target.matches("input, textarea, select")) target.setAttribute("tabindex", "-1");
      target.focus();
    } finally {
      submit.disabled = false;
    }
  }

  updateCounters();
  preview();
  return () => clearTimeout(timer);
}
