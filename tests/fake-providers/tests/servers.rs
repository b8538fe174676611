//! The fake servers over real HTTP/1.1, with a small raw-TcpStream client.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_providers::{
    DIRECTORY_SCOPE, FakeGoogle, FakeOffice365, Fault, GRAPH_SCOPE, GoogleOptions,
    JWT_BEARER_GRANT, Office365Options, RetryAfter, TEST_PRIVATE_KEY_PEM,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

// ---------------------------------------------------------------- a minimal HTTP/1.1 client

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(base_url: &str) -> Self {
        let stream = TcpStream::connect(base_url.strip_prefix("http://").unwrap()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;

        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "closed without a response",
            ));
        }
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = response
            .header("content-length")
            .map_or(0, |v| v.parse().unwrap());
        response.body.resize(length, 0);
        self.reader.read_exact(&mut response.body)?;
        Ok(response)
    }
}

/// One request on a fresh connection.
fn request(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    Connection::open(base_url)
        .send(method, path, headers, body)
        .unwrap()
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn post_form(base_url: &str, path: &str, pairs: &[(&str, &str)]) -> Response {
    let body = form_encode(pairs);
    request(
        base_url,
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
}

// ---------------------------------------------------------------- Office 365 helpers

fn office365() -> FakeOffice365 {
    FakeOffice365::start(Office365Options::default()).unwrap()
}

fn o365_token_response(server: &FakeOffice365, secret: &str) -> Response {
    let o = server.options();
    let path = format!("/{}/oauth2/v2.0/token", o.tenant_id);
    post_form(
        &server.login_url(),
        &path,
        &[
            ("client_id", &o.client_id),
            ("client_secret", secret),
            ("scope", GRAPH_SCOPE),
            ("grant_type", "client_credentials"),
        ],
    )
}

fn o365_token(server: &FakeOffice365) -> String {
    let response = o365_token_response(server, &server.options().client_secret);
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["access_token"].as_str().unwrap().to_owned()
}

fn graph_revoke_path(subject: &str) -> String {
    format!("/v1.0/users/{subject}/revokeSignInSessions")
}

fn graph_revoke(server: &FakeOffice365, subject: &str, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    request(
        &server.graph_url(),
        "POST",
        &graph_revoke_path(subject),
        &[("Authorization", &auth)],
        b"",
    )
}

fn graph_code(response: &Response) -> String {
    response.json()["error"]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------- Google helpers

fn google() -> FakeGoogle {
    FakeGoogle::start(GoogleOptions::default()).unwrap()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid claims for `server`; tests alter them.
fn claims(server: &FakeGoogle) -> Value {
    let now = now_secs();
    json!({
        "iss": server.options().client_email,
        "sub": server.options().admin_subject,
        "scope": DIRECTORY_SCOPE,
        "aud": server.token_url(),
        "iat": now,
        "exp": now + 3600,
    })
}

fn sign(claims: &Value, private_key_pem: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(fake_providers::TEST_PRIVATE_KEY_ID.to_owned());
    let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn google_token_response(server: &FakeGoogle, assertion: &str) -> Response {
    post_form(
        &server.base_url(),
        "/token",
        &[("grant_type", JWT_BEARER_GRANT), ("assertion", assertion)],
    )
}

fn google_token(server: &FakeGoogle) -> String {
    let response = google_token_response(server, &sign(&claims(server), TEST_PRIVATE_KEY_PEM));
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["access_token"].as_str().unwrap().to_owned()
}

fn google_sign_out(server: &FakeGoogle, user_key: &str, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    let path = format!("/admin/directory/v1/users/{user_key}/signOut");
    request(
        &server.directory_url(),
        "POST",
        &path,
        &[("Authorization", &auth)],
        b"",
    )
}

/// `(code, domain, reason, status)` of a Google API error, checking its shape.
fn google_error(response: &Response) -> (u64, String, String, String) {
    let body = response.json();
    let error = &body["error"];
    assert_eq!(
        error["code"].as_u64(),
        Some(u64::from(response.status)),
        "{body}"
    );
    assert!(error["message"].is_string(), "{body}");
    let errors = error["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert!(errors[0]["message"].is_string(), "{body}");
    (
        error["code"].as_u64().unwrap(),
        errors[0]["domain"].as_str().unwrap().to_owned(),
        errors[0]["reason"].as_str().unwrap().to_owned(),
        error["status"].as_str().unwrap().to_owned(),
    )
}

// ---------------------------------------------------------------- Office 365: token endpoint

#[test]
fn o365_token_success() {
    let server = office365();
    let response = o365_token_response(&server, "test-client-secret");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(!body["access_token"].as_str().unwrap().is_empty());
    assert_eq!((server.token_requests(), server.tokens_issued()), (1, 1));
    assert_eq!(
        server.token_url(),
        format!(
            "{}/{}/oauth2/v2.0/token",
            server.base_url(),
            server.options().tenant_id
        )
    );
}

#[test]
fn o365_token_expires_in_is_configurable() {
    let server = FakeOffice365::start(Office365Options {
        token_expires_in: 120,
        ..Office365Options::default()
    })
    .unwrap();
    let response = o365_token_response(&server, "test-client-secret");
    assert_eq!(response.json()["expires_in"], 120);
}

#[test]
fn o365_token_wrong_secret_is_401_invalid_client_without_the_secret() {
    let server = office365();
    let response = o365_token_response(&server, "not-the-secret-XYZ");
    assert_eq!(response.status, 401);
    let body = response.json();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7_000_215]));
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS7000215: Invalid client secret provided."),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field} in {body}");
    }
    let text = response.text();
    assert!(
        !text.contains("not-the-secret-XYZ") && !text.contains("test-client-secret"),
        "{text}"
    );
    assert_eq!((server.token_requests(), server.tokens_issued()), (1, 0));
}

#[test]
fn o365_token_validation_errors() {
    let server = office365();
    let o = server.options().clone();
    let token_path = format!("/{}/oauth2/v2.0/token", o.tenant_id);
    let valid = [
        ("client_id", o.client_id.as_str()),
        ("client_secret", o.client_secret.as_str()),
        ("scope", GRAPH_SCOPE),
        ("grant_type", "client_credentials"),
    ];
    let error = |response: &Response| {
        let body = response.json();
        (
            response.status,
            body["error"].as_str().unwrap().to_owned(),
            body["error_codes"][0].as_u64().unwrap(),
        )
    };

    let mut wrong_scope = valid;
    wrong_scope[2].1 = "https://graph.microsoft.com/User.Read";
    let response = post_form(&server.base_url(), &token_path, &wrong_scope);
    assert_eq!(error(&response), (400, "invalid_scope".to_owned(), 70_011));

    let response = post_form(
        &server.base_url(),
        "/some-other-tenant/oauth2/v2.0/token",
        &valid,
    );
    assert_eq!(
        error(&response),
        (400, "invalid_request".to_owned(), 90_002)
    );

    let mut wrong_client = valid;
    wrong_client[0].1 = "33333333-3333-3333-3333-333333333333";
    let response = post_form(&server.base_url(), &token_path, &wrong_client);
    assert_eq!(
        error(&response),
        (400, "unauthorized_client".to_owned(), 700_016)
    );

    // Not a form: the parameters are not seen at all.
    let body = serde_json::to_vec(&json!({"grant_type": "client_credentials"})).unwrap();
    let response = request(
        &server.base_url(),
        "POST",
        &token_path,
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(
        error(&response),
        (400, "invalid_request".to_owned(), 900_144)
    );

    let response = request(&server.base_url(), "GET", &token_path, &[], b"");
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));

    let text = response.text();
    assert!(!text.contains(&o.client_secret));
    assert_eq!((server.token_requests(), server.tokens_issued()), (5, 0));
}

#[test]
fn o365_token_faults() {
    let server = office365();
    server.push_token_faults([
        Fault::Unavailable {
            retry_after: Some(RetryAfter::Seconds(2)),
        },
        Fault::Status(401),
    ]);
    let response = o365_token_response(&server, "test-client-secret");
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("2"));
    assert_eq!(response.json()["error"], "temporarily_unavailable");
    let response = o365_token_response(&server, "test-client-secret");
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["error"], "invalid_client");
    o365_token(&server);
    assert_eq!((server.token_requests(), server.tokens_issued()), (3, 1));
}

// ---------------------------------------------------------------- Office 365: revoke endpoint

#[test]
fn graph_revoke_success_is_counted() {
    let server = office365();
    let token = o365_token(&server);
    let response = graph_revoke(&server, "alice@example.com", &token);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.json(),
        json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true})
    );
    assert_eq!(server.applied("alice@example.com"), 1);
    assert_eq!(server.applied("bob@example.com"), 0);
    assert_eq!((server.applied_total(), server.revoke_requests()), (1, 1));
}

#[test]
fn graph_keep_alive_serves_several_requests_on_one_connection() {
    let server = office365();
    let token = o365_token(&server);
    let auth = format!("Bearer {token}");
    let mut connection = Connection::open(&server.base_url());
    for subject in ["a@example.com", "b@example.com", "a@example.com"] {
        let response = connection
            .send(
                "POST",
                &graph_revoke_path(subject),
                &[("Authorization", &auth)],
                b"",
            )
            .unwrap();
        assert_eq!(response.status, 200);
    }
    let expected = [
        ("a@example.com".to_owned(), 2),
        ("b@example.com".to_owned(), 1),
    ]
    .into();
    assert_eq!(server.applied_subjects(), expected);
}

#[test]
fn graph_revoke_with_bad_token_is_401_and_not_applied() {
    let server = office365();
    let token = o365_token(&server);
    let path = graph_revoke_path("alice@example.com");

    let response = graph_revoke(&server, "alice@example.com", "not-a-token");
    assert_eq!(response.status, 401);
    assert_eq!(graph_code(&response), "InvalidAuthenticationToken");
    let inner = &response.json()["error"]["innerError"];
    assert!(
        inner["request-id"].is_string() && inner["date"].is_string(),
        "{inner}"
    );

    let response = request(&server.base_url(), "POST", &path, &[], b"");
    assert_eq!(
        (response.status, graph_code(&response)),
        (401, "InvalidAuthenticationToken".to_owned())
    );

    let auth = format!("Bearer {token}");
    let response = request(
        &server.base_url(),
        "POST",
        &path,
        &[("Authorization", &auth)],
        b"{}",
    );
    assert_eq!(response.status, 400, "a body is refused");

    let response = request(
        &server.base_url(),
        "GET",
        &path,
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(response.status, 405);

    assert_eq!((server.applied_total(), server.revoke_requests()), (0, 4));
}

#[test]
fn graph_revoke_subject_is_percent_decoded() {
    let server = office365();
    let token = o365_token(&server);
    assert_eq!(
        graph_revoke(&server, "alice%40example.com", &token).status,
        200
    );
    assert_eq!(
        graph_revoke(&server, "alice@example.com", &token).status,
        200
    );
    assert_eq!(graph_revoke(&server, "odd%2Fname%20x", &token).status, 200);
    assert_eq!(server.applied("alice@example.com"), 2);
    assert_eq!(server.applied("odd/name x"), 1);
}

#[test]
fn graph_unknown_and_forbidden_users() {
    let server = office365();
    server.unknown_user("ghost@example.com");
    server.forbid_user("ceo@example.com");
    let token = o365_token(&server);
    for _ in 0..2 {
        let response = graph_revoke(&server, "ghost%40example.com", &token);
        assert_eq!(response.status, 404);
        let body = response.json();
        assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
        assert_eq!(
            body["error"]["message"],
            "Resource 'ghost@example.com' does not exist or one of its queried reference-property objects are not present."
        );
        let response = graph_revoke(&server, "ceo@example.com", &token);
        assert_eq!(response.status, 403);
        assert_eq!(
            response.json()["error"]["message"],
            "Insufficient privileges to complete the operation."
        );
        assert_eq!(graph_code(&response), "Authorization_RequestDenied");
    }
    assert_eq!((server.applied_total(), server.revoke_requests()), (0, 4));
}

#[test]
fn graph_unknown_path_is_404() {
    let server = office365();
    let response = request(&server.base_url(), "GET", "/v1.0/me", &[], b"");
    assert_eq!(response.status, 404);
    assert!(response.json()["error"]["code"].is_string());
}

#[test]
fn graph_429_carries_retry_after_seconds_or_date() {
    let server = office365();
    let token = o365_token(&server);
    let when = SystemTime::now() + Duration::from_secs(30);
    server.push_faults([
        Fault::TooManyRequests {
            retry_after: Some(RetryAfter::Seconds(7)),
        },
        Fault::TooManyRequests {
            retry_after: Some(RetryAfter::Date(when)),
        },
        Fault::Unavailable { retry_after: None },
        Fault::QuotaExceeded {
            reason: "quotaExceeded",
        },
    ]);
    assert_eq!(server.pending_faults(), 4);

    let response = graph_revoke(&server, "alice@example.com", &token);
    assert_eq!(
        (response.status, graph_code(&response)),
        (429, "TooManyRequests".to_owned())
    );
    assert_eq!(response.header("retry-after"), Some("7"));

    let response = graph_revoke(&server, "alice@example.com", &token);
    assert_eq!(response.status, 429);
    let date = response.header("retry-after").unwrap();
    assert!(
        date.ends_with(" GMT") && date.len() == 29,
        "IMF-fixdate: {date}"
    );
    let parsed = httpdate::parse_http_date(date).unwrap();
    let difference = parsed.duration_since(when).unwrap_or_else(|e| e.duration());
    assert!(difference < Duration::from_secs(1), "{date}");

    let response = graph_revoke(&server, "alice@example.com", &token);
    assert_eq!(
        (response.status, graph_code(&response)),
        (503, "serviceNotAvailable".to_owned())
    );
    assert_eq!(response.header("retry-after"), None);

    let response = graph_revoke(&server, "alice@example.com", &token);
    assert_eq!(response.status, 429);

    assert_eq!(
        graph_revoke(&server, "alice@example.com", &token).status,
        200
    );
    assert_eq!(
        (
            server.applied("alice@example.com"),
            server.revoke_requests()
        ),
        (1, 5)
    );
    assert_eq!(server.pending_faults(), 0);
}

#[test]
fn graph_status_fault_uses_graph_error_body() {
    let server = office365();
    let token = o365_token(&server);
    server.push_faults([Fault::Status(500), Fault::Status(404)]);
    let response = graph_revoke(&server, "alice@example.com", &token);
    assert_eq!(
        (response.status, graph_code(&response)),
        (500, "generalException".to_owned())
    );
    let response = graph_revoke(&server, "alice@example.com", &token);
    assert_eq!(
        (response.status, graph_code(&response)),
        (404, "Request_ResourceNotFound".to_owned())
    );
    assert_eq!(server.applied_total(), 0);
}

#[test]
fn expired_token_fault_invalidates_all_issued_tokens() {
    let server = office365();
    let first = o365_token(&server);
    let second = o365_token(&server);
    server.push_faults([Fault::ExpiredToken]);
    let response = graph_revoke(&server, "alice@example.com", &first);
    assert_eq!(
        (response.status, graph_code(&response)),
        (401, "InvalidAuthenticationToken".to_owned())
    );
    for old in [&first, &second] {
        assert_eq!(graph_revoke(&server, "alice@example.com", old).status, 401);
    }
    let fresh = o365_token(&server);
    assert_eq!(
        graph_revoke(&server, "alice@example.com", &fresh).status,
        200
    );
    assert_eq!(
        (
            server.applied_total(),
            server.revoke_requests(),
            server.tokens_issued()
        ),
        (1, 4, 3)
    );
}

#[test]
fn tokens_expire_after_expires_in() {
    let server = FakeOffice365::start(Office365Options {
        token_expires_in: 1,
        ..Office365Options::default()
    })
    .unwrap();
    let token = o365_token(&server);
    assert_eq!(
        graph_revoke(&server, "alice@example.com", &token).status,
        200
    );
    std::thread::sleep(Duration::from_millis(1100));
    let response = graph_revoke(&server, "alice@example.com", &token);
    assert_eq!(response.status, 401);
    assert!(
        response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[test]
fn reset_closes_the_connection_without_a_response() {
    let server = office365();
    let token = o365_token(&server);
    let auth = format!("Bearer {token}");
    let path = graph_revoke_path("alice@example.com");
    let mut connection = Connection::open(&server.base_url());
    assert_eq!(
        connection
            .send("POST", &path, &[("Authorization", &auth)], b"")
            .unwrap()
            .status,
        200
    );

    server.push_faults([Fault::Reset]);
    let error = connection
        .send("POST", &path, &[("Authorization", &auth)], b"")
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    assert_eq!((server.applied_total(), server.revoke_requests()), (1, 2));

    // The server is fine afterwards.
    assert_eq!(
        graph_revoke(&server, "alice@example.com", &token).status,
        200
    );

    server.push_token_faults([Fault::Reset]);
    let mut connection = Connection::open(&server.base_url());
    let error = connection
        .send(
            "POST",
            &server.token_url().replace(&server.base_url(), ""),
            &[],
            b"",
        )
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    o365_token(&server);
}

#[test]
fn slow_fault_answers_503_late_and_does_not_apply() {
    let server = office365();
    let token = o365_token(&server);
    server.push_faults([Fault::Slow(Duration::from_millis(300))]);
    let started = Instant::now();
    let response = graph_revoke(&server, "alice@example.com", &token);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        (response.status, graph_code(&response)),
        (503, "serviceNotAvailable".to_owned())
    );
    assert_eq!((server.applied_total(), server.revoke_requests()), (0, 1));
}

#[test]
fn latency_delays_every_revoke() {
    let server = office365();
    let token = o365_token(&server);
    server.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(
        graph_revoke(&server, "alice@example.com", &token).status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn stall_blocks_until_release_then_503_without_applying() {
    let server = office365();
    let token = o365_token(&server);
    server.stall_after(1);
    assert_eq!(
        graph_revoke(&server, "alice@example.com", &token).status,
        200
    );

    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for subject in ["bob@example.com", "carol@example.com"] {
            let (sender, server, token) = (sender.clone(), &server, &token);
            scope.spawn(move || sender.send(graph_revoke(server, subject, token)).unwrap());
        }
        assert!(
            receiver.recv_timeout(Duration::from_millis(500)).is_err(),
            "stalled requests block"
        );
        assert_eq!((server.applied_total(), server.revoke_requests()), (1, 3));

        server.release();
        for _ in 0..2 {
            let response = receiver.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(
                (response.status, graph_code(&response)),
                (503, "serviceNotAvailable".to_owned())
            );
        }
    });
    assert_eq!(
        server.applied_subjects(),
        [("alice@example.com".to_owned(), 1)].into()
    );

    // Normal again after release.
    assert_eq!(
        graph_revoke(&server, "dave@example.com", &token).status,
        200
    );
    assert_eq!(server.applied_total(), 2);
}

#[test]
fn wait_for_applied_blocks_until_reached_or_timeout() {
    let server = office365();
    let token = o365_token(&server);
    assert!(!server.wait_for_applied(1, Duration::from_millis(50)));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(150));
            graph_revoke(&server, "alice@example.com", &token);
        });
        assert!(server.wait_for_applied(1, Duration::from_secs(10)));
    });
    assert!(server.wait_for_applied(1, Duration::ZERO));
    assert!(!server.wait_for_applied(2, Duration::from_millis(50)));
}

#[test]
fn dropping_the_handle_stops_the_server() {
    let server = office365();
    let address = server.addr();
    o365_token(&server);
    drop(server);
    assert!(TcpStream::connect(address).is_err());
}

// ---------------------------------------------------------------- Google: token endpoint

#[test]
fn google_jwt_is_accepted() {
    let server = google();
    let response = google_token_response(&server, &sign(&claims(&server), TEST_PRIVATE_KEY_PEM));
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], DIRECTORY_SCOPE);
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
    assert_eq!((server.token_requests(), server.tokens_issued()), (1, 1));
    assert_eq!(server.token_url(), format!("{}/token", server.base_url()));
}

#[test]
fn google_jwt_signed_with_another_key_is_invalid_grant() {
    let server = google();
    // A second test key, not the one the server trusts.
    let other_key = include_str!("../keys/other-test-key.pem");

    let response = google_token_response(&server, &sign(&claims(&server), other_key));
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json(),
        json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    );

    // The right key, but a tampered signature.
    let jwt = sign(&claims(&server), TEST_PRIVATE_KEY_PEM);
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    let mut signature = signature.to_owned().into_bytes();
    signature[10] = if signature[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{signed}.{}", String::from_utf8(signature).unwrap());
    let response = google_token_response(&server, &tampered);
    assert_eq!(
        (response.status, response.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );
    assert_eq!(server.tokens_issued(), 0);
}

#[test]
fn google_wrong_sub_or_scope_is_unauthorized_client() {
    let server = google();
    for (claim, value) in [
        ("sub", "someone-else@example.com"),
        (
            "scope",
            "https://www.googleapis.com/auth/admin.directory.user",
        ),
    ] {
        let mut claims = claims(&server);
        claims[claim] = json!(value);
        let response = google_token_response(&server, &sign(&claims, TEST_PRIVATE_KEY_PEM));
        assert_eq!(response.status, 401, "{claim}");
        assert_eq!(
            response.json(),
            json!({
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
            })
        );
    }
    assert_eq!(server.tokens_issued(), 0);
}

#[test]
fn google_jwt_claim_checks_are_invalid_grant() {
    let server = google();
    let now = now_secs();
    let cases = [
        ("aud", json!("https://oauth2.googleapis.com/token")),
        ("iss", json!("intruder@other.iam.gserviceaccount.com")),
        ("exp", json!(now + 7200)),
        ("iat", json!(now - 7200)),
        ("exp", json!(now - 120)),
        ("iat", json!(now + 600)),
    ];
    for (claim, value) in cases {
        let mut claims = claims(&server);
        claims[claim] = value.clone();
        if claim == "exp" && value.as_i64() < Some(now) {
            claims["iat"] = json!(now - 1000);
        }
        let response = google_token_response(&server, &sign(&claims, TEST_PRIVATE_KEY_PEM));
        assert_eq!(
            response.status,
            400,
            "{claim} = {value}: {}",
            response.text()
        );
        assert_eq!(
            response.json()["error"],
            "invalid_grant",
            "{claim} = {value}"
        );
    }
    let mut no_exp = claims(&server);
    no_exp.as_object_mut().unwrap().remove("exp");
    let response = google_token_response(&server, &sign(&no_exp, TEST_PRIVATE_KEY_PEM));
    assert_eq!(
        (response.status, response.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );

    // Not RS256.
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&server),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    let response = google_token_response(&server, &hs256);
    assert_eq!(
        (response.status, response.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );

    // Within the 60 s skew is fine.
    let mut skewed = claims(&server);
    skewed["iat"] = json!(now + 30);
    let response = google_token_response(&server, &sign(&skewed, TEST_PRIVATE_KEY_PEM));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!((server.token_requests(), server.tokens_issued()), (9, 1));
}

#[test]
fn google_token_request_form_checks() {
    let server = google();
    let jwt = sign(&claims(&server), TEST_PRIVATE_KEY_PEM);
    let response = post_form(
        &server.base_url(),
        "/token",
        &[("grant_type", "client_credentials"), ("assertion", &jwt)],
    );
    assert_eq!(
        (response.status, response.json()["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
    let response = post_form(
        &server.base_url(),
        "/token",
        &[("grant_type", JWT_BEARER_GRANT)],
    );
    assert_eq!(
        (response.status, response.json()["error"].clone()),
        (400, json!("invalid_request"))
    );
    let response = request(&server.base_url(), "GET", "/token", &[], b"");
    assert_eq!(response.status, 405);
    server.push_token_faults([Fault::Status(401)]);
    let response = google_token_response(&server, &jwt);
    assert_eq!(
        (response.status, response.json()["error"].clone()),
        (401, json!("unauthorized_client"))
    );
    assert_eq!(google_token_response(&server, &jwt).status, 200);
}

// ---------------------------------------------------------------- Google: signOut

#[test]
fn google_sign_out_is_204_empty_and_counted() {
    let server = google();
    let token = google_token(&server);
    let response = google_sign_out(&server, "alice%40example.com", &token);
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
    assert_eq!(
        google_sign_out(&server, "alice@example.com", &token).status,
        204
    );
    assert_eq!(server.applied("alice@example.com"), 2);
    assert_eq!(server.revoke_requests(), 2);
}

#[test]
fn google_error_bodies() {
    let server = google();
    server.unknown_user("ghost@example.com");
    server.forbid_user("ceo@example.com");
    let token = google_token(&server);

    let response = google_sign_out(&server, "alice@example.com", "ya29.bogus");
    assert_eq!(
        google_error(&response),
        (
            401,
            "global".to_owned(),
            "authError".to_owned(),
            "UNAUTHENTICATED".to_owned()
        )
    );

    let response = google_sign_out(&server, "ghost@example.com", &token);
    assert_eq!(
        google_error(&response),
        (
            404,
            "global".to_owned(),
            "notFound".to_owned(),
            "NOT_FOUND".to_owned()
        )
    );
    assert_eq!(
        response.json()["error"]["message"],
        "Resource Not Found: userKey"
    );

    let response = google_sign_out(&server, "ceo@example.com", &token);
    assert_eq!(
        google_error(&response),
        (
            403,
            "global".to_owned(),
            "forbidden".to_owned(),
            "PERMISSION_DENIED".to_owned()
        )
    );
    assert_eq!(
        response.json()["error"]["message"],
        "Not Authorized to access this resource/api"
    );

    server.push_faults([
        Fault::QuotaExceeded {
            reason: "userRateLimitExceeded",
        },
        Fault::QuotaExceeded {
            reason: "quotaExceeded",
        },
        Fault::TooManyRequests { retry_after: None },
        Fault::Unavailable {
            retry_after: Some(RetryAfter::Seconds(3)),
        },
    ]);
    let response = google_sign_out(&server, "alice@example.com", &token);
    assert_eq!(
        google_error(&response),
        (
            403,
            "usageLimits".to_owned(),
            "userRateLimitExceeded".to_owned(),
            "PERMISSION_DENIED".to_owned()
        )
    );
    assert_eq!(
        response.json()["error"]["message"],
        "User Rate Limit Exceeded"
    );
    let response = google_sign_out(&server, "alice@example.com", &token);
    assert_eq!(google_error(&response).2, "quotaExceeded");
    let response = google_sign_out(&server, "alice@example.com", &token);
    assert_eq!(
        google_error(&response),
        (
            429,
            "usageLimits".to_owned(),
            "rateLimitExceeded".to_owned(),
            "RESOURCE_EXHAUSTED".to_owned()
        )
    );
    let response = google_sign_out(&server, "alice@example.com", &token);
    assert_eq!(google_error(&response).2, "backendError");
    assert_eq!(response.header("retry-after"), Some("3"));

    let response = request(
        &server.base_url(),
        "POST",
        "/admin/directory/v1/users",
        &[],
        b"",
    );
    assert_eq!(google_error(&response).0, 404);

    assert_eq!((server.applied_total(), server.revoke_requests()), (0, 7));
    assert_eq!(
        google_sign_out(&server, "alice@example.com", &token).status,
        204
    );
}

#[test]
fn google_expired_token_fault() {
    let server = google();
    let token = google_token(&server);
    server.push_faults([Fault::ExpiredToken]);
    assert_eq!(
        google_error(&google_sign_out(&server, "alice@example.com", &token)).2,
        "authError"
    );
    assert_eq!(
        google_sign_out(&server, "alice@example.com", &token).status,
        401
    );
    let fresh = google_token(&server);
    assert_eq!(
        google_sign_out(&server, "alice@example.com", &fresh).status,
        204
    );
}

#[test]
fn google_key_file_is_a_service_account_key() {
    let server = google();
    let key: Value = serde_json::from_str(&server.key_file_json()).unwrap();
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["project_id"], "srs-test-project");
    assert_eq!(key["client_email"], server.options().client_email);
    assert_eq!(key["token_uri"], server.token_url());
    assert_eq!(key["private_key"], TEST_PRIVATE_KEY_PEM);
    for field in [
        "private_key_id",
        "client_id",
        "auth_uri",
        "auth_provider_x509_cert_url",
        "client_x509_cert_url",
        "universe_domain",
    ] {
        assert!(key[field].is_string(), "{field}");
    }
    // The key in the file signs assertions the server accepts.
    let jwt = sign(&claims(&server), key["private_key"].as_str().unwrap());
    assert_eq!(google_token_response(&server, &jwt).status, 200);
}

#[test]
fn dropping_the_handle_with_stalled_requests_does_not_hang() {
    let server = office365();
    let token = o365_token(&server);
    server.stall_after(0);
    let auth = format!("Bearer {token}");
    let mut connection = Connection::open(&server.base_url());
    let (sender, receiver) = mpsc::channel();
    let client = std::thread::spawn(move || {
        let path = graph_revoke_path("alice@example.com");
        sender.send(()).unwrap();
        connection.send("POST", &path, &[("Authorization", &auth)], b"")
    });
    receiver.recv().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.revoke_requests(), 1);
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        client.join().unwrap().is_err(),
        "the stalled request never gets an answer"
    );
}

#[test]
fn stall_after_never_applies_more_than_n_under_concurrency() {
    let server = office365();
    let token = o365_token(&server);
    server.stall_after(5);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..20)
            .map(|i| {
                let (server, token) = (&server, &token);
                scope.spawn(move || {
                    graph_revoke(server, &format!("user{i}@example.com"), token).status
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.revoke_requests() < 20 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(server.applied_total(), 5);
        server.release();
        clients
            .into_iter()
            .map(|client| client.join().unwrap())
            .collect()
    });
    assert_eq!(statuses.iter().filter(|&&status| status == 200).count(), 5);
    assert_eq!(statuses.iter().filter(|&&status| status == 503).count(), 15);
    assert_eq!(server.applied_total(), 5);
}
