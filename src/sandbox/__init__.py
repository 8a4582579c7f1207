"""The sandbox: a local stand-in for the KakaoTalk dealer API, and a recipient simulator
that taps tracked links and forwards messages the way people do.

Run it with `allim sandbox`, or in-process with `sandbox.server.serving(create_app(settings))`.

- `POST|GET /v1/appkeys/{appkey}/messages`: the provider contract (`api`, checks in
  `validation`, decisions in `dealer`).
- `/_sandbox/config` (GET, PATCH), `/_sandbox/clock` (GET, PUT), `/_sandbox/stats`,
  `/_sandbox/reset`, `/_sandbox/ledger/{alert_id}[/recipients]`: its own endpoints (`admin`);
  `sandbox.client.SandboxClient` calls them.
- `people` is the pure model of readers and forwards; `simulator` makes the taps.
"""
