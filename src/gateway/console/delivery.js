// The alert's pace and channels: the send rate, the estimated end and the deadline (with a
// badge when it is missed or will be), delivered and failed by channel (KakaoTalk, and the
// SMS/LMS fallback), and how many KakaoTalk handed to SMS/LMS and how many that reached.

import { h } from "./dom.js";
import { CHANNEL, TERMINAL, number, percent, when, duration } from "./labels.js";

/** The pace of `alert` (an AlertPublic): rate, estimate, deadline and whether it is late. */
export function paceFacts(alert) {
  const ended = TERMINAL.has(alert.status);
  return h(
    "div",
    { id: "pace" },
    alert.late
      ? h(
          "p",
          { class: "notice late", id: "late-badge", role: "status" },
          h("span", { class: "badge late" }, ended ? "기한 초과" : "기한 초과 예상"),
          " ",
          ended
            ? `기한(${when(alert.deadline)})이 지난 뒤에 끝났습니다.`
            : `지금 속도로는 기한(${when(alert.deadline)})까지 모두 보내지 못합니다.`,
        )
      : null,
    h(
      "dl",
      { class: "facts inline" },
      h("dt", {}, "현재 속도"),
      h("dd", { id: "pace-rate" }, alert.send_rate === null ? "–" : `초당 ${number(Math.round(alert.send_rate))}건`),
      h("dt", {}, "예상 완료"),
      h("dd", { id: "pace-eta" }, when(alert.eta)),
      h("dt", {}, "기한"),
      h(
        "dd",
        { id: "pace-deadline" },
        alert.deliver_within
          ? `${when(alert.deadline)} (시작 후 ${duration(alert.deliver_within)} 이내)`
          : "없음",
      ),
    ),
  );
}

/**
 * Delivered and failed by channel from the alert's `channels`, with each channel's readers
 * from the stats' `channels`, and the fallback's figures from the stats' `fallback`.
 */
export function channelFacts(channels, stats) {
  const reads = new Map((stats?.channels || []).map((c) => [c.channel, c]));
  const names = [...new Set([...Object.keys(channels || {}), ...reads.keys()])].sort((a, b) =>
    a === "kakao" ? -1 : b === "kakao" ? 1 : a.localeCompare(b),
  );
  const fallback = stats?.fallback;
  return h(
    "div",
    { id: "channels" },
    names.length
      ? h(
          "table",
          { class: "compact", id: "channels-table" },
          h("caption", {}, "채널별 전달"),
          h(
            "thead",
            {},
            h("tr", {}, ["채널", "전달", "실패", "열람자", "열람률"].map((t) => h("th", { scope: "col" }, t))),
          ),
          h(
            "tbody",
            {},
            names.map((name) => {
              const sent = (channels || {})[name];
              const read = reads.get(name);
              return h(
                "tr",
                { "data-channel": name },
                h("th", { scope: "row" }, CHANNEL[name] || name),
                h("td", { class: "delivered" }, number(sent ? sent.delivered : read?.delivered)),
                h("td", { class: "failed" }, number(sent?.failed)),
                h("td", {}, number(read?.readers)),
                h("td", {}, percent(read?.read_rate)),
              );
            }),
          ),
        )
      : h("p", { class: "muted" }, "아직 채널별로 정산된 발송이 없습니다."),
    fallback
      ? h(
          "p",
          { id: "fallback-figures" },
          "문자 대체 발송: 카카오톡이 받지 못한 ",
          h("strong", { id: "fallback-handed" }, number(fallback.handed_over)),
          "명 중 ",
          h("strong", { id: "fallback-reached" }, number(fallback.reached)),
          "명에게 문자(SMS·LMS)로 전달",
        )
      : h("p", { class: "muted", id: "fallback-figures" }, "이 알림은 문자(SMS·LMS) 대체 발송이 없습니다."),
  );
}
