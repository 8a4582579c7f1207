// Approve: the alert as its recipients will see it, who wrote it, its reach by district
// and the estimated duration; approve, or reject with a reason. The author is shown no
// approve button on their own alert (and the API refuses it too).

import { api } from "./api.js";
import { h, fill } from "./dom.js";
import { APPROVAL, may, number, when, duration } from "./labels.js";
import { statusBadge, categoryBadge, kakaoMessage, smsMessage, showFieldErrors, errorSlot, errorId } from "./widgets.js";

export async function renderReview(main, ctx, id) {
  const [alert, preview] = await Promise.all([api("GET", `/v1/alerts/${id}`), api("GET", `/v1/alerts/${id}/preview`)]);
  const own = alert.author === ctx.me.name;
  const canDecide = may(ctx.me.role, "approve") && !own && alert.status === "pending_approval";

  const general = h("div", { class: "form-error", role: "alert", hidden: true });
  const reason = h("textarea", { id: "reject-reason", name: "reason", rows: "3", "aria-describedby": errorId("reason") });
  const decision = h("section", { class: "card", id: "decision" }, h("h2", {}, "결정"));
  if (canDecide) {
    const form = h(
      "form",
      { novalidate: true, onsubmit: (e) => e.preventDefault() },
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", id: "approve", onclick: () => decide("approve") }, "승인하고 발송")),
      h("label", { for: "reject-reason" }, "반려 사유"),
      reason,
      errorSlot("reason"),
      h("div", { class: "actions" }, h("button", { type: "button", class: "danger", id: "reject", onclick: () => decide("reject") }, "반려")),
      general,
    );
    decision.appendChild(form);

    async function decide(what) {
      if (what === "reject" && !reason.value.trim()) {
        showFieldErrors(form, general, { errors: [{ field: "reason", message: "반려 사유를 입력하세요." }], problem: {}, message: "" });
        reason.focus();
        return;
      }
      for (const button of form.querySelectorAll("button")) button.disabled = true;
      try {
        const decided = await api("POST", `/v1/alerts/${id}/${what}`, what === "reject" ? { json: { reason: reason.value.trim() } } : {});
        ctx.toast(what === "approve" ? "승인했습니다." : "반려했습니다.");
        ctx.navigate(`#/alerts/${decided.id}`);
      } catch (error) {
        showFieldErrors(form, general, error);
        for (const button of form.querySelectorAll("button")) button.disabled = false;
      }
    }
  } else {
    let why = "이 알림은 더 이상 승인을 기다리지 않습니다.";
    if (alert.status === "pending_approval") {
      why = own ? "본인이 작성한 알림은 본인이 승인할 수 없습니다. 다른 승인자가 검토합니다." : "승인 권한이 있는 사람만 결정할 수 있습니다.";
    }
    decision.appendChild(h("p", { id: "no-decision" }, why));
  }

  const est = preview.estimate;
  fill(
    main,
    h("div", { class: "title-row" }, h("h1", {}, "승인 검토"), h("a", { href: `#/alerts/${id}`, class: "button" }, "알림 화면")),
    h(
      "div",
      { class: "columns" },
      h(
        "section",
        { class: "card" },
        h("h2", {}, "수신자가 보게 될 메시지"),
        kakaoMessage(preview.message),
        h("h3", {}, "카카오톡으로 받지 못한 사람에게 (문자)"),
        smsMessage(preview.sms),
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "요약"),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "상태"), h("dd", {}, statusBadge(alert.status)),
          h("dt", {}, "분류"), h("dd", {}, categoryBadge(alert.category)),
          h("dt", {}, "작성자"), h("dd", { id: "author" }, alert.author || "–"),
          h("dt", {}, "작성 시각"), h("dd", {}, when(alert.created_at)),
          h("dt", {}, "승인"), h("dd", {}, APPROVAL[alert.approval] || alert.approval),
          h("dt", {}, "수신자"), h("dd", { id: "review-recipients" }, `${number(preview.recipients)}명`),
          h("dt", {}, "발송 예약"), h("dd", {}, alert.send_at ? when(alert.send_at) : "승인 즉시"),
          h("dt", {}, "만료"), h("dd", {}, when(alert.expires_at)),
          h("dt", {}, "예상 소요"),
          h("dd", {}, est.seconds !== null ? `${duration(est.seconds)} (예상 종료 ${when(est.ends_at)})` : "속도 제한 없음: 사업자가 받는 만큼 빠르게"),
        ),
        preview.warnings.length ? h("ul", { class: "warnings" }, preview.warnings.map((w) => h("li", { class: "warning" }, w.message))) : null,
        h(
          "table",
          { class: "compact" },
          h("caption", {}, "지역별 수신자"),
          h("tbody", {}, preview.by_district.map((d) => h("tr", {}, h("th", { scope: "row" }, d.district ?? "지역 없음"), h("td", {}, number(d.recipients))))),
        ),
      ),
    ),
    decision,
  );
  return null;
}
