// The console's shell: who is signed in, the menu, and which screen the address shows.
// Screens are addressed by the fragment (#/alerts, #/alerts/ID, ...), so the gateway serves
// one page and a reload keeps the screen.

import { api, setCsrf } from "./api.js";
import { h, fill } from "./dom.js";
import { ROLE, may } from "./labels.js";
import { renderSignIn } from "./signin.js";
import { renderAlerts } from "./alerts.js";
import { renderCompose } from "./compose.js";
import { renderReview } from "./review.js";
import { renderAlert } from "./alert.js";
import { renderSubscribers } from "./subscribers.js";
import { renderAudit } from "./audit.js";
import { renderAccounts } from "./accounts.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const toastBox = document.getElementById("toast");

const ctx = {
  me: null,
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  toast(message) {
    fill(toastBox, message);
    toastBox.classList.add("shown");
    clearTimeout(ctx.toastTimer);
    ctx.toastTimer = setTimeout(() => toastBox.classList.remove("shown"), 4000);
  },
  async signedIn(session) {
    ctx.me = session;
    setCsrf(session.csrf_token);
    drawChrome();
  },
};

// [pattern, screen, permission] in the order they are tried
const ROUTES = [
  [/^#\/alerts\/new$/, renderCompose, "send"],
  [/^#\/alerts\/([0-9a-f-]{36})\/review$/, renderReview, "read"],
  [/^#\/alerts\/([0-9a-f-]{36})$/, renderAlert, "read"],
  [/^#\/alerts(?:\?(.*))?$/, renderAlerts, "read"],
  [/^#\/subscribers$/, renderSubscribers, "read"],
  [/^#\/audit(?:\?(.*))?$/, renderAudit, "audit"],
  [/^#\/accounts$/, renderAccounts, "manage"],
];

let cleanup = null;

async function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!ctx.me) {
    drawChrome();
    cleanup = await renderSignIn(main, ctx);
    return;
  }
  const hash = location.hash || "#/alerts";
  for (const [pattern, screen, permission] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    if (!may(ctx.me.role, permission)) {
      fill(main, h("h1", {}, "권한 없음"), h("p", {}, `${ROLE[ctx.me.role]} 역할로는 이 화면을 볼 수 없습니다.`));
      return;
    }
    cleanup = (await screen(main, ctx, ...match.slice(1))) || null;
    focusHeading();
    return;
  }
  ctx.navigate("#/alerts");
}

function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

function drawChrome() {
  if (!ctx.me) {
    nav.hidden = true;
    fill(who);
    return;
  }
  const links = [
    ["#/alerts", "알림 목록", "read"],
    ["#/alerts/new", "알림 작성", "send"],
    ["#/subscribers", "구독자", "read"],
    ["#/audit", "감사 기록", "audit"],
    ["#/accounts", "사용자와 키", "manage"],
  ];
  fill(
    nav,
    h(
      "ul",
      {},
      links.filter(([, , permission]) => may(ctx.me.role, permission)).map(([href, label]) => h("li", {}, h("a", { href }, label))),
    ),
  );
  nav.hidden = false;
  fill(
    who,
    h("span", { class: "who-name" }, ctx.me.name),
    " ",
    h("span", { class: "badge" }, ROLE[ctx.me.role] || ctx.me.role),
    " ",
    h("button", { type: "button", class: "link", onclick: signOut }, "로그아웃"),
  );
}

async function signOut() {
  try {
    await api("DELETE", "/v1/session");
  } catch {
    // an ended session is signed out already
  }
  ctx.me = null;
  setCsrf("");
  ctx.toast("로그아웃했습니다.");
  route();
}

window.addEventListener("allim:signed-out", () => {
  if (!ctx.me) return;
  ctx.me = null;
  setCsrf("");
  ctx.toast("세션이 끝났습니다. 다시 로그인하세요.");
  route();
});
window.addEventListener("hashchange", route);

async function start() {
  try {
    const session = await api("GET", "/v1/session");
    await ctx.signedIn(session);
  } catch {
    ctx.me = null;
  }
  route();
}

start();
