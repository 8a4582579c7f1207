// Users and keys, for admins: people with their role and state, a new person, disable and
// unlock; API keys, a new one shown once, and revoke.

import { api } from "./api.js";
import { h, fill, confirmDialog } from "./dom.js";
import { ROLE, when } from "./labels.js";
import { showFieldErrors, clearFieldErrors, errorSlot, errorId } from "./widgets.js";

const STATE = { active: "사용 중", locked: "잠김", disabled: "비활성" };

export async function renderAccounts(main, ctx) {
  const usersBody = h("tbody");
  const keysBody = h("tbody");
  const owner = h("select", { id: "key-user" });
  const shown = h("div", { id: "new-key", "aria-live": "polite" });
  const name = h("input", { id: "user-name", "aria-describedby": errorId("name") });
  const role = h("select", { id: "user-role", "aria-describedby": errorId("role") }, Object.entries(ROLE).map(([code, label]) => h("option", { value: code }, label)));
  const password = h("input", { id: "user-password", type: "password", autocomplete: "new-password", "aria-describedby": `password-hint ${errorId("password")}` });
  const general = h("div", { class: "form-error", role: "alert", hidden: true });
  const userForm = h(
    "form",
    { onsubmit: createUser, novalidate: true },
    h("label", { for: "user-name" }, "이름"), name, errorSlot("name"),
    h("label", { for: "user-role" }, "역할"), role, errorSlot("role"),
    h("label", { for: "user-password" }, "비밀번호"), password,
    h("p", { class: "muted", id: "password-hint" }, "12자 이상. 비우면 API 키로만 쓰는 계정이 됩니다."),
    errorSlot("password"),
    general,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "사용자 만들기")),
  );
  const label = h("input", { id: "key-label", placeholder: "비우면 사용자 이름" });

  fill(
    main,
    h("h1", {}, "사용자와 API 키"),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "사용자"),
      h("div", { class: "table-wrap" }, h("table", { id: "users-table" },
        h("thead", {}, h("tr", {}, ["이름", "역할", "상태", "비밀번호", "활성 키", "만든 때", ""].map((t) => h("th", { scope: "col" }, t)))),
        usersBody)),
    ),
    h("section", { class: "card" }, h("h2", {}, "새 사용자"), userForm),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "API 키"),
      h("form", { class: "inline-form", onsubmit: createKey },
        h("label", { for: "key-user" }, "사용자"), owner,
        h("label", { for: "key-label" }, "이름표"), label,
        h("button", { type: "submit", class: "primary" }, "키 발급")),
      shown,
      h("div", { class: "table-wrap" }, h("table", { id: "keys-table" },
        h("thead", {}, h("tr", {}, ["접두어", "사용자", "이름표", "상태", "만든 때", ""].map((t) => h("th", { scope: "col" }, t)))),
        keysBody)),
    ),
  );

  async function load() {
    const [people, keys] = await Promise.all([api("GET", "/v1/users"), api("GET", "/v1/keys")]);
    fill(
      usersBody,
      people.map((user) =>
        h(
          "tr",
          { dataset: { user: user.name } },
          h("td", {}, user.name),
          h("td", {}, ROLE[user.role] || user.role),
          h("td", { class: "state" }, STATE[user.state] || user.state),
          h("td", {}, user.password ? "있음" : "없음"),
          h("td", {}, String(user.active_keys)),
          h("td", {}, when(user.created_at)),
          h(
            "td",
            {},
            user.state === "locked" ? h("button", { type: "button", onclick: () => act(user, "unlock") }, "잠금 해제") : null,
            user.state !== "disabled" && user.name !== ctx.me.name
              ? h("button", { type: "button", class: "danger", onclick: () => act(user, "disable") }, "비활성화")
              : null,
          ),
        ),
      ),
    );
    fill(owner, people.filter((u) => u.state !== "disabled").map((u) => h("option", { value: String(u.id) }, `${u.name} (${ROLE[u.role]})`)));
    fill(
      keysBody,
      keys.map((key) =>
        h(
          "tr",
          { dataset: { prefix: key.prefix } },
          h("td", {}, key.prefix),
          h("td", {}, key.user),
          h("td", {}, key.label, key.machine_feed ? " (기계 연계)" : ""),
          h("td", { class: "state" }, key.revoked_at ? `폐기 ${when(key.revoked_at)}` : "사용 중"),
          h("td", {}, when(key.created_at)),
          h("td", {}, key.revoked_at ? null : h("button", { type: "button", class: "danger", onclick: () => revoke(key) }, "폐기")),
        ),
      ),
    );
  }

  async function act(user, what) {
    const question = what === "disable"
      ? `${user.name} 사용자를 비활성화할까요? 키와 세션이 바로 멈춥니다.`
      : `${user.name} 사용자의 잠금을 풀까요?`;
    if (!(await confirmDialog(question, what === "disable" ? "비활성화" : "잠금 해제"))) return;
    try {
      await api("POST", `/v1/users/${user.id}/${what}`);
      ctx.toast("바꿨습니다.");
    } catch (error) {
      ctx.toast(`바꾸지 못했습니다: ${error.message}`);
    }
    load();
  }

  async function createUser(event) {
    event.preventDefault();
    clearFieldErrors(userForm, general);
    try {
      const body = { name: name.value, role: role.value, password: password.value || null };
      const user = await api("POST", "/v1/users", { json: body });
      ctx.toast(`${user.name} 사용자를 만들었습니다.`);
      name.value = "";
      password.value = "";
      load();
    } catch (error) {
      showFieldErrors(userForm, general, error);
    }
  }

  async function createKey(event) {
    event.preventDefault();
    try {
      const key = await api("POST", "/v1/keys", { json: { user_id: Number(owner.value), label: label.value.trim() || null } });
      fill(
        shown,
        h("p", { class: "notice" }, "이 키는 지금 한 번만 보입니다. 안전한 곳에 옮겨 두세요."),
        h("p", {}, h("code", { id: "new-key-value" }, key.key)),
      );
      label.value = "";
      load();
    } catch (error) {
      fill(shown, h("p", { class: "form-error", role: "alert" }, "발급하지 못했습니다: ", error.message));
    }
  }

  async function revoke(key) {
    if (!(await confirmDialog(`${key.user}의 키 ${key.prefix}를 폐기할까요? 바로 멈춥니다.`, "폐기"))) return;
    try {
      await api("POST", `/v1/keys/${key.prefix}/revoke`);
      ctx.toast("키를 폐기했습니다.");
    } catch (error) {
      ctx.toast(`폐기하지 못했습니다: ${error.message}`);
    }
    load();
  }

  await load();
  return null;
}
