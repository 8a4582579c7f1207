// Sign-in: a name and a password against POST /v1/session.

import { api } from "./api.js";
import { h, fill } from "./dom.js";

export async function renderSignIn(main, ctx) {
  const message = h("p", { class: "form-error", id: "signin-error", role: "alert", hidden: true });
  const name = h("input", { id: "signin-name", name: "name", autocomplete: "username", required: true, maxlength: "100" });
  const password = h("input", {
    id: "signin-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
    "aria-describedby": "signin-error",
  });
  const submit = h("button", { type: "submit", class: "primary" }, "로그인");
  const form = h(
    "form",
    { class: "card narrow", onsubmit: signIn, novalidate: true },
    h("h1", {}, "로그인"),
    h("p", { class: "muted" }, "공공 알림을 작성·승인·관리하려면 로그인하세요."),
    h("label", { for: "signin-name" }, "이름"),
    name,
    h("label", { for: "signin-password" }, "비밀번호"),
    password,
    message,
    h("div", { class: "actions" }, submit),
  );
  fill(main, form);
  name.focus();

  async function signIn(event) {
    event.preventDefault();
    message.hidden = true;
    if (!name.value.trim() || !password.value) {
      fill(message, "이름과 비밀번호를 모두 입력하세요.");
      message.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      const session = await api("POST", "/v1/session", { json: { name: name.value.trim(), password: password.value } });
      await ctx.signedIn(session);
      ctx.navigate(location.hash && location.hash !== "#/signin" ? location.hash : "#/alerts");
    } catch (error) {
      if (error.status === 401) {
        fill(message, "이름 또는 비밀번호가 틀렸습니다.");
      } else if (error.status === 429) {
        const wait = error.headers && error.headers.get("Retry-After");
        fill(message, wait ? `로그인 시도가 너무 많습니다. ${wait}초 후에 다시 시도하세요. ` : "계정이 잠시 잠겼습니다. ", error.message);
      } else {
        fill(message, "로그인하지 못했습니다: ", error.message);
      }
      message.hidden = false;
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
    }
  }
  return null;
}
