// Pieces several screens share: the progress bar, the status badge, the KakaoTalk-like
// message, and field errors from a problem's `errors`.

import { h, fill } from "./dom.js";
import { STATUS, CATEGORY, percent } from "./labels.js";

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, STATUS[status] || status);
}

export function categoryBadge(category) {
  return h("span", { class: `badge category-${category}` }, CATEGORY[category] || category);
}

/** A progress bar with its share written beside it (0 to 1). */
export function progressBar(share, label) {
  const value = Math.round(share * 1000) / 10;
  return h(
    "div",
    { class: "progress" },
    h("progress", { max: "100", value: String(value), "aria-label": label }),
    h("span", { class: "progress-text" }, percent(share)),
  );
}

/**
 * The message as a KakaoTalk channel message looks in the chat: the channel's header, the
 * title, the body with its line breaks, and the buttons. `message` is a preview's
 * `message` (message_type, title, body, buttons[{name, link}]).
 */
export function kakaoMessage(message) {
  const brand = message.message_type === "BRAND";
  return h(
    "figure",
    { class: "kakao", "aria-label": "수신자가 받는 카카오톡 메시지" },
    h(
      "div",
      { class: "kakao-row" },
      h("div", { class: "kakao-avatar", "aria-hidden": "true" }, "알"),
      h(
        "div",
        { class: "kakao-col" },
        h("div", { class: "kakao-channel" }, "알림 채널"),
        h(
          "div",
          { class: "kakao-bubble" },
          h("div", { class: "kakao-head" }, brand ? "(광고) 브랜드 메시지" : "알림톡 도착"),
          h(
            "div",
            { class: "kakao-content" },
            h("p", { class: "kakao-title" }, message.title),
            h("p", { class: "kakao-body" }, message.body),
          ),
          h(
            "div",
            { class: "kakao-buttons" },
            message.buttons.map((button) =>
              h(
                "span",
                { class: "kakao-button", title: button.link === "#{link}" ? "수신자별 추적 링크" : button.link },
                button.name,
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

/**
 * The SMS or LMS those KakaoTalk refuses get: a preview's `sms` (kind, subject, text,
 * bytes{length, limit}, fallback_codes), or a note that the alert has no fallback.
 */
export function smsMessage(sms) {
  if (!sms) {
    return h("p", { class: "muted", id: "sms-none" }, "문자(SMS·LMS) 대체 발송 없음: 카카오톡으로 받지 못한 사람에게는 보내지 않습니다.");
  }
  const over = sms.bytes.length > sms.bytes.limit;
  return h(
    "figure",
    { class: "sms", id: "sms-preview", "aria-label": "카카오톡으로 받지 못한 사람이 받는 문자" },
    h(
      "p",
      { class: "sms-head" },
      h("span", { class: "badge", id: "sms-kind" }, sms.kind),
      " ",
      h("span", { id: "sms-bytes", class: over ? "counter over" : "counter" }, `${sms.bytes.length} / ${sms.bytes.limit}바이트`),
    ),
    sms.subject ? h("p", { class: "sms-subject", id: "sms-subject" }, sms.subject) : null,
    h("p", { class: "sms-text", id: "sms-text" }, sms.text),
    h("figcaption", { class: "muted" }, `카카오톡 코드 ${sms.fallback_codes.join(", ")}로 받지 못한 사람에게 보냅니다. #{link}는 수신자별 추적 링크입니다.`),
  );
}

/** Show each of `errors` next to the element of the form whose data-field names it; the
 * rest, and the problem's detail, in `general`. Returns the first field shown, to focus. */
export function showFieldErrors(form, general, error) {
  clearFieldErrors(form, general);
  let first = null;
  const unplaced = [];
  for (const item of error.errors) {
    const slot = fieldSlot(form, item.field);
    if (slot) {
      slot.hidden = false;
      slot.appendChild(h("span", {}, item.message));
      const input = form.querySelector(`[aria-describedby~="${slot.id}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
      if (!first) first = input || slot;
    } else {
      unplaced.push(item);
    }
  }
  if (unplaced.length || !error.errors.length) {
    fill(
      general,
      h("strong", {}, error.problem.title || "요청이 거절되었습니다"),
      " ",
      error.message,
      unplaced.length ? h("ul", {}, unplaced.map((e) => h("li", {}, `${e.field}: ${e.message}`))) : null,
    );
    general.hidden = false;
  }
  return first;
}

function fieldSlot(form, field) {
  // the most precise slot: "buttons[0].name", else "buttons[0]", else "buttons"; likewise
  // "audience.districts", else "audience"
  let name = field;
  while (name) {
    const slot = form.querySelector(`.field-error[data-field="${CSS.escape(name)}"]`);
    if (slot) return slot;
    const cut = Math.max(name.lastIndexOf("."), name.lastIndexOf("["));
    name = cut > 0 ? name.slice(0, cut) : "";
  }
  return null;
}

export function clearFieldErrors(form, general) {
  for (const slot of form.querySelectorAll(".field-error")) {
    slot.replaceChildren();
    slot.hidden = true;
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  general.replaceChildren();
  general.hidden = true;
}

/** A field's error slot, to put after its input; the input names it in aria-describedby. */
export function errorSlot(field) {
  return h("p", { class: "field-error", id: `err-${field.replace(/[^a-z0-9]/gi, "-")}`, "data-field": field, hidden: true });
}

export function errorId(field) {
  return `err-${field.replace(/[^a-z0-9]/gi, "-")}`;
}
