// Korean names of what the API answers in codes, the roles' permissions (as
// src/gateway/users.py has them), and how numbers and instants are written.

export const STATUS = {
  pending_approval: "승인 대기",
  paused: "일시정지",
  rejected: "반려됨",
  expired: "만료됨",
  scheduled: "예약됨",
  queued: "발송 대기",
  sending: "발송 중",
  completed: "발송 완료",
  cancelled: "취소됨",
  failed: "실패",
  not_broadcast: "발송 안 함",
};

export const CATEGORY = { emergency: "긴급", public: "공공 안내", promotional: "홍보" };

export const ROLE = { viewer: "열람자", operator: "작성자", approver: "승인자", admin: "관리자" };

export const APPROVAL = {
  required: "승인 필요",
  off: "승인 없이 발송",
  exempt: "승인 면제 분류",
  machine_feed: "기계 연계",
  test: "시험 발송",
};

export const ACTION = {
  "alert.create": "알림 작성",
  "alert.approve": "승인",
  "alert.reject": "반려",
  "alert.expire": "만료",
  "alert.test": "시험 발송",
  "alert.cancel": "발송 취소",
  "alert.pause": "일시정지",
  "alert.resume": "재개",
  "alert.resend": "재발송",
  "alert.correction": "정정",
  "alert.update": "추가 안내",
  "subscriber.opt_out": "수신 거부 처리",
  "subscribers.import": "구독자 가져오기",
  signin: "로그인",
  "signin.failed": "로그인 실패",
  "signin.refused": "로그인 거절",
  signout: "로그아웃",
  "user.create": "사용자 생성",
  "user.password": "비밀번호 변경",
  "user.unlock": "잠금 해제",
  "user.disable": "사용자 비활성화",
  "key.create": "API 키 발급",
  "key.revoke": "API 키 폐기",
};

export const WARNING = {
  quiet_hours: "야간 발송 제한",
  send_at_past: "지난 발송 시각",
  expires_before_end: "만료가 발송 종료보다 이름",
  not_broadcast: "발송되지 않음",
};

export const CHANNEL = { kakao: "카카오톡", sms: "문자(SMS·LMS)" };

export const OUTCOME = { delivered: "전달됨", failed: "실패", pending: "대기 중", not_sent: "보내지 않음" };

export const RELATION = { resend: "재발송", correction: "정정", update: "추가 안내" };

// why a recipient was not sent to, as src/gateway/recipients.py words it (the rest as given)
export const NOT_SENT = {
  "opted out or left the audience before their batch was sent": "차례가 오기 전에 수신 거부했거나 대상에서 빠졌습니다",
  "the alert was cancelled before their batch": "차례가 오기 전에 발송이 취소되었습니다",
  "joined after the alert was planned": "발송 계획 뒤에 구독했습니다",
  "not in the audience when the alert was planned": "발송 계획 때 대상이 아니었습니다",
};

export const TERMINAL = new Set(["completed", "cancelled", "failed", "not_broadcast", "rejected", "expired"]);

const PERMISSIONS = {
  read: ["viewer", "operator", "approver", "admin"],
  send: ["operator", "approver"],
  approve: ["approver"],
  audit: ["approver", "admin"],
  manage: ["admin"],
};

/** Whether `role` may do `permission` (the API decides; this only hides what it refuses). */
export function may(role, permission) {
  return PERMISSIONS[permission].includes(role);
}

const NUMBER = new Intl.NumberFormat("ko-KR");
const WHEN = new Intl.DateTimeFormat("ko-KR", {
  timeZone: "Asia/Seoul",
  dateStyle: "medium",
  timeStyle: "medium",
});
const CLOCK = new Intl.DateTimeFormat("ko-KR", { timeZone: "Asia/Seoul", timeStyle: "short" });

export function number(value) {
  return value === null || value === undefined ? "–" : NUMBER.format(value);
}

export function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`;
}

export function when(value) {
  return value ? WHEN.format(new Date(value)) : "–";
}

export function clock(value) {
  return CLOCK.format(new Date(value));
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${Math.ceil(seconds)}초`;
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds % 60);
  if (minutes < 60) return rest ? `${minutes}분 ${rest}초` : `${minutes}분`;
  return `${Math.floor(minutes / 60)}시간 ${minutes % 60}분`;
}

/** Share of the targeted recipients settled (delivered or failed), 0 to 1. */
export function progress(alert) {
  if (!alert.targeted) return TERMINAL.has(alert.status) && alert.status === "completed" ? 1 : 0;
  return Math.min(1, (alert.delivered + alert.failed) / alert.targeted);
}
