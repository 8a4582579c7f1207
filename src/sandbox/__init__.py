"""The sandbox: a local stand-in for the KakaoTalk dealer API, and a recipient simulator
that taps tracked links and forwards messages the way people do."""
