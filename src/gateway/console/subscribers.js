// Subscribers: counts by district and status, a CSV import with its report, and one
// subscriber's look-up and opt-out.

import { api, upload } from "./api.js";
import { h, fill, confirmDialog } from "./dom.js";
import { may, number, when } from "./labels.js";
import { progressBar } from "./widgets.js";

const NUMBER_PATTERN = /^01[016789][0-9]{7,8}$/;

export async function renderSubscribers(main, ctx) {
  const operator = may(ctx.me.role, "send");
  const countsBox = h("div", { id: "counts" });
  const importBox = h("div", { id: "import-report", "aria-live": "polite" });
  const file = h("input", { type: "file", id: "import-file", accept: ".csv,text/csv" });
  const found = h("div", { id: "lookup-result", "aria-live": "polite" });
  const number_ = h("input", { id: "lookup-number", inputmode: "numeric", placeholder: "01012345678", "aria-describedby": "lookup-hint" });

  fill(
    main,
    h("h1", {}, "구독자"),
    h("section", { class: "card" }, h("h2", {}, "지역별 현황"), countsBox),
    operator
      ? h(
          "section",
          { class: "card" },
          h("h2", {}, "CSV 가져오기"),
          h("p", { class: "muted" }, "첫 줄은 머리글입니다: recipient_no, district, tags (태그는 ;로 구분). 수신 거부한 사람은 다시 켜지지 않습니다."),
          h(
            "form",
            { onsubmit: runImport },
            h("label", { for: "import-file" }, "CSV 파일"),
            file,
            h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "가져오기")),
          ),
          importBox,
        )
      : null,
    h(
      "section",
      { class: "card" },
      h("h2", {}, "구독자 조회"),
      h(
        "form",
        { onsubmit: lookUp, class: "inline-form" },
        h("label", { for: "lookup-number" }, "휴대전화 번호"),
        number_,
        h("button", { type: "submit" }, "조회"),
      ),
      h("p", { class: "muted", id: "lookup-hint" }, "숫자만 입력하세요 (예: 01012345678)."),
      found,
    ),
  );

  async function loadCounts() {
    const counts = await api("GET", "/v1/subscribers/counts");
    fill(
      countsBox,
      h("p", {}, "수신 중 ", h("strong", { id: "count-active" }, number(counts.active)), "명 · 수신 거부 ", h("strong", {}, number(counts.opted_out)), "명"),
      h(
        "table",
        { class: "compact" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "지역"), h("th", { scope: "col" }, "수신 중"), h("th", { scope: "col" }, "수신 거부"))),
        h("tbody", {}, counts.districts.map((d) => h("tr", {}, h("th", { scope: "row" }, d.district ?? "지역 없음"), h("td", {}, number(d.active)), h("td", {}, number(d.opted_out))))),
      ),
    );
  }

  async function runImport(event) {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) {
      fill(importBox, h("p", { class: "form-error" }, "파일을 고르세요."));
      return;
    }
    const bar = h("div");
    fill(importBox, h("p", {}, `${chosen.name} 올리는 중…`), bar);
    fill(bar, progressBar(0, "가져오기 진행률"));
    try {
      const report = await upload("/v1/subscribers:import", chosen, "text/csv", (share) => fill(bar, progressBar(share, "가져오기 진행률")));
      fill(
        importBox,
        h(
          "dl",
          { class: "facts inline", id: "import-figures" },
          h("dt", {}, "반영"), h("dd", {}, number(report.accepted)),
          h("dt", {}, "거절"), h("dd", {}, number(report.rejected)),
          h("dt", {}, "새로 추가"), h("dd", {}, number(report.created)),
          h("dt", {}, "변경"), h("dd", {}, number(report.updated)),
          h("dt", {}, "그대로"), h("dd", {}, number(report.unchanged)),
          h("dt", {}, "수신 거부 유지"), h("dd", {}, number(report.opted_out)),
        ),
        report.errors.length
          ? h(
              "table",
              { class: "compact" },
              h("caption", {}, report.rejected > report.errors.length ? `거절된 줄 (처음 ${report.errors.length}개)` : "거절된 줄"),
              h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "줄"), h("th", { scope: "col" }, "이유"))),
              h("tbody", {}, report.errors.map((e) => h("tr", {}, h("td", {}, number(e.line)), h("td", {}, e.reason)))),
            )
          : null,
      );
      loadCounts();
    } catch (error) {
      fill(importBox, h("p", { class: "form-error", role: "alert" }, "가져오지 못했습니다: ", error.message));
    }
  }

  async function lookUp(event) {
    event.preventDefault();
    const wanted = number_.value.trim();
    if (!NUMBER_PATTERN.test(wanted)) {
      fill(found, h("p", { class: "form-error", role: "alert" }, "번호는 숫자만, 010으로 시작하는 10~11자리로 입력하세요."));
      return;
    }
    try {
      show(await api("GET", `/v1/subscribers/${wanted}`));
    } catch (error) {
      fill(found, h("p", { class: "form-error", role: "alert" }, error.status === 404 ? "등록되지 않은 번호입니다." : error.message));
    }
  }

  function show(subscriber) {
    fill(
      found,
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "번호"), h("dd", {}, subscriber.recipient_no),
        h("dt", {}, "지역"), h("dd", {}, subscriber.district ?? "–"),
        h("dt", {}, "태그"), h("dd", {}, subscriber.tags.join(", ") || "–"),
        h("dt", {}, "상태"), h("dd", { id: "subscriber-status" }, subscriber.status === "active" ? "수신 중" : `수신 거부 (${when(subscriber.opted_out_at)})`),
        h("dt", {}, "등록"), h("dd", {}, when(subscriber.created_at)),
      ),
      operator && subscriber.status === "active"
        ? h("button", { type: "button", class: "danger", onclick: () => optOut(subscriber) }, "수신 거부 처리")
        : null,
    );
  }

  async function optOut(subscriber) {
    if (!(await confirmDialog(`${subscriber.recipient_no} 번호를 수신 거부 처리할까요? 진행 중인 발송에서도 빠집니다.`, "수신 거부"))) return;
    try {
      show(await api("DELETE", `/v1/subscribers/${subscriber.recipient_no}`));
      ctx.toast("수신 거부 처리했습니다.");
      loadCounts();
    } catch (error) {
      ctx.toast(`처리하지 못했습니다: ${error.message}`);
    }
  }

  await loadCounts();
  return null;
}
