//! Credentials never reach kcache's error messages.
//!
//! A `kube::Config` is built by hand with a bearer token and a client
//! certificate and key (a throwaway pair generated for this test only). A
//! [`KubeSource`] made from it talks to a loopback server that records the
//! request and refuses it; the `Display` and `Debug` renderings of every error
//! on the way (the source error, the watcher error wrapping it, their whole
//! `source()` chains) must not contain the token or any part of the key.
//! `KubeSource` has no `Debug` impl, so it cannot print the client either.

use std::error::Error;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kcache::reflector::{KubeSource, Source, SourceError};
use kcache::reflector::WatcherError;
use kube::api::{ListParams, WatchParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "kcache-test-bearer-9f2c4e6a8b0d1357";

/// Base64 of a PEM certificate (CN=kcache-test-client), as a kubeconfig carries it.
const CLIENT_CERT_B64: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrVENDQVRlZ0F3SUJBZ0lVUCtZaVgvTWEvUDRXY1UvbkRIYXhLUTNsTkhRd0NnWUlLb1pJemowRUF3SXcKSFRFYk1Ca0dBMVVFQXd3U2EyTmhZMmhsTFhSbGMzUXRZMnhwWlc1ME1DQVhEVEkyTVRFeU16RTVNekEwTkZvWQpEekl4TWpZeE1ETXdNVGt6TURRMFdqQWRNUnN3R1FZRFZRUUREQkpyWTJGamFHVXRkR1Z6ZEMxamJHbGxiblF3CldUQVRCZ2NxaGtqT1BRSUJCZ2dxaGtqT1BRTUJCd05DQUFUZGMzMmZOQjRwYUdQUnNacWM0MFliNDJpc3B1TkUKQ1B0OTF3OGJWdEo2L3UvODFKcWVNWThGNVF5c0RCYUpUeC96dEs5MjhIOHJCbHdtQ0VkY3BWUW5vMU13VVRBZApCZ05WSFE0RUZnUVV0SnRMT3Z0eTRJZ0NESG1OUDc5QU9rZHJPTGt3SHdZRFZSMGpCQmd3Rm9BVXRKdExPdnR5CjRJZ0NESG1OUDc5QU9rZHJPTGt3RHdZRFZSMFRBUUgvQkFVd0F3RUIvekFLQmdncWhrak9QUVFEQWdOSUFEQkYKQWlCMi9ULzdFV1hpZ0VEOEZnS2oxTmZ0UTFaQ0xZVmRwbHdlRkRmczZwejltQUloQU5mejFCYTJONTE1dUpvYwpnc0RaQW5KZXJHU3ZQZUNudUZLNS9zYUplV0IvCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";

/// Base64 of the matching PKCS#8 P-256 private key (test-only, never used elsewhere).
const CLIENT_KEY_B64: &str = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEJHMHdhd0lCQVFRZ2taVWR4WVZUSjJaSkplRzUKb2ZOWHFKcFFTSHgwSzUyTGE1SldkcG1ydkEraFJBTkNBQVRkYzMyZk5CNHBhR1BSc1pxYzQwWWI0MmlzcHVORQpDUHQ5MXc4YlZ0SjYvdS84MUpxZU1ZOEY1UXlzREJhSlR4L3p0SzkyOEg4ckJsd21DRWRjcFZRbgotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==";

/// The key's PEM body lines: none may appear either.
const CLIENT_KEY_LINES: [&str; 3] = [
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkZUdxYVTJ2ZJJeG5",
    "ofNXqJpQSHx0K52La5JWdpmrvA+hRANCAATdc32fNB4paGPRsZqc40Yb42ispuNE",
    "CPt91w8bVtJ6/u/81JqeMY8F5QysDBaJTx/ztK928H8rBlwmCEdcpVQn",
];

/// The secrets, plus distinctive fragments of them (a prefix of the key's
/// private scalar, the token's random tail) so that partial leaks count too.
fn secrets() -> Vec<&'static str> {
    let mut s = vec![TOKEN, "9f2c4e6a8b0d1357", CLIENT_KEY_B64, &CLIENT_KEY_B64[40..80], "kZUdxYVTJ2ZJJeG5"];
    s.extend(CLIENT_KEY_LINES);
    s
}

fn assert_no_secret(text: &str, what: &str) {
    for s in secrets() {
        assert!(!text.contains(s), "{what} contains a credential ({s:?}): {text}");
    }
}

/// `Display` and `Debug` of the error and of every error in its `source()` chain.
fn render_chain(e: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur = Some(e);
    while let Some(e) = cur {
        out.push_str(&format!("{e}\n{e:?}\n"));
        cur = e.source();
    }
    out
}

/// A config with every kind of credential kcache could be handed.
fn config_with_credentials(url: &str) -> kube::Config {
    let mut config = kube::Config::new(url.parse().expect("test url"));
    config.auth_info.token = Some(TOKEN.to_owned().into());
    config.auth_info.client_certificate_data = Some(CLIENT_CERT_B64.to_owned());
    config.auth_info.client_key_data = Some(CLIENT_KEY_B64.to_owned().into());
    config
}

/// A loopback HTTP/1.1 server answering every request with `status` and a
/// Status body; records each request head.
async fn refusing_server(status: u16, reason: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock().expect("log lock").push(String::from_utf8_lossy(&head).into_owned());
                let body = format!(
                    r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"pods is forbidden: User \"system:serviceaccount:test:kcache\" cannot list resource \"pods\"","reason":"{reason}","code":{status}}}"#
                );
                let resp = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (url, seen)
}

#[test]
fn the_config_debug_output_redacts_token_and_key() {
    let config = config_with_credentials("http://127.0.0.1:1");
    assert_no_secret(&format!("{config:?}"), "kube::Config Debug");
    assert_no_secret(&format!("{:?}", config.auth_info), "AuthInfo Debug");
}

#[tokio::test]
async fn list_and_watch_refusals_do_not_leak_the_token_or_key() {
    let (url, seen) = refusing_server(403, "Forbidden").await;
    let client = kube::Client::try_from(config_with_credentials(&url)).expect("client with token and client identity");
    let source = KubeSource::for_type::<Pod>(client, Some("default"));

    let list_err = source.list(&ListParams::default()).await.expect_err("server refuses the list");
    assert!(matches!(list_err, SourceError::Api { code: 403, .. }), "{list_err:?}");
    let watch_err = match source.watch(&WatchParams::default(), "0").await {
        Ok(_) => panic!("server refuses the watch"),
        Err(e) => e,
    };
    assert!(matches!(watch_err, SourceError::Api { code: 403, .. }), "{watch_err:?}");

    // The test is only meaningful if the token really went out with the requests.
    let requests = seen.lock().expect("log lock").clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests.iter().all(|r| r.to_ascii_lowercase().contains(&format!("authorization: bearer {TOKEN}").to_ascii_lowercase())),
        "{requests:?}"
    );

    assert_no_secret(&render_chain(&list_err), "list SourceError");
    assert_no_secret(&render_chain(&watch_err), "watch SourceError");
    assert_no_secret(&render_chain(&WatcherError::List(list_err)), "WatcherError::List");
    assert_no_secret(&render_chain(&WatcherError::Watch(watch_err)), "WatcherError::Watch");
}

#[tokio::test]
async fn transport_failures_do_not_leak_the_token_or_key() {
    // A port that was just free: the connection is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        l.local_addr().expect("local addr").port()
    };
    let client = kube::Client::try_from(config_with_credentials(&format!("http://127.0.0.1:{port}")))
        .expect("client with token and client identity");
    let source = KubeSource::for_type::<Pod>(client, None);
    let err = source.list(&ListParams::default()).await.expect_err("nothing listens there");
    assert!(matches!(err, SourceError::Transport(_)), "{err:?}");
    let text = render_chain(&err);
    assert!(text.contains("request to the api server failed"), "{text}");
    assert_no_secret(&text, "transport SourceError");
    assert_no_secret(&render_chain(&WatcherError::Stream(err)), "WatcherError::Stream");
}

#[test]
fn a_malformed_client_key_is_reported_without_its_bytes() {
    // kube refuses the identity; its error must not echo the key material either.
    let mut config = config_with_credentials("http://127.0.0.1:1");
    let broken = format!("{}!{}", &CLIENT_KEY_B64[..100], &CLIENT_KEY_B64[100..]);
    config.auth_info.client_key_data = Some(broken.clone().into());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _guard = runtime.enter();
    let err = match kube::Client::try_from(config) {
        Ok(_) => panic!("a key that is not base64 is refused"),
        Err(e) => e,
    };
    let text = render_chain(&err);
    assert_no_secret(&text, "client construction error");
    assert!(!text.contains(&broken[..60]), "{text}");
}
