//! Mutual TLS against a real TLS server on loopback that demands a client certificate signed
//! by its CA. Certificates are made fresh by the `openssl` command for each run.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vitalhub_connectors::http::{HttpError, HttpSettings, HttpSource};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA,
/// and a stranger's client certificate signed by another CA.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let mut args = vec!["req", "-x509", "-days", "2", "-subj"];
        let subject = format!("/CN=vitalhub test {ca}");
        args.push(&subject);
        args.extend(ec);
        let (key, cert) = (format!("{ca}.key"), format!("{ca}.crt"));
        args.extend(["-keyout", &key, "-out", &cert]);
        openssl(dir, &args);
    }
    let leaf = |name: &str, ca: &str, extra: &[&str]| {
        let subject = format!("/CN={name}");
        let (key, cert) = (format!("{name}.key"), format!("{name}.crt"));
        let (ca_cert, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subject];
        args.extend(ec);
        args.extend([
            "-CA", &ca_cert, "-CAkey", &ca_key, "-keyout", &key, "-out", &cert,
        ]);
        args.extend(["-addext", "basicConstraints=critical,CA:FALSE"]);
        args.extend(extra);
        openssl(dir, &args);
    };
    leaf(
        "server",
        "ca",
        &[
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
    );
    leaf("client", "ca", &["-addext", "extendedKeyUsage=clientAuth"]);
    leaf(
        "stranger",
        "other-ca",
        &["-addext", "extendedKeyUsage=clientAuth"],
    );
}

/// Serves one JSON answer per request to clients whose certificate the CA signed; counts the
/// requests it answered and the handshakes it refused.
async fn serve(dir: &Path, answered: Arc<AtomicU32>, refused: Arc<AtomicU32>) -> u16 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.crt"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(dir.join("ca.crt")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, answered, refused) =
                (acceptor.clone(), answered.clone(), refused.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    refused.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                answered.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"ok":true}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

fn settings(dir: &Path, port: u16, client: Option<&str>) -> HttpSettings {
    let mut s = HttpSettings::new("health", &format!("https://127.0.0.1:{port}"));
    s.ca_pem = Some(std::fs::read(dir.join("ca.crt")).unwrap());
    s.client_identity_pem = client.map(|name| {
        // As the pull config builds it from client_cert_file and client_key_file.
        let mut pem = std::fs::read(dir.join(format!("{name}.crt"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
        pem
    });
    s.max_attempts = 2;
    s.backoff_initial = Duration::from_millis(10);
    s.backoff_max = Duration::from_millis(20);
    s.requests_per_second = 100.0;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_client_certificate_signed_by_the_agency_ca_gets_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let (answered, refused) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let port = serve(dir.path(), answered.clone(), refused.clone()).await;
    let accept_json = |b: &[u8]| -> Result<(), String> {
        serde_json::from_slice::<serde_json::Value>(b)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };

    let source = HttpSource::new(settings(dir.path(), port, Some("client"))).unwrap();
    let ((), body, stats) = source.get("/v1/births", &[], accept_json).await.unwrap();
    assert_eq!(body, br#"{"ok":true}"#);
    assert_eq!(stats.attempts, 1);
    assert_eq!(answered.load(Ordering::SeqCst), 1);
    assert_eq!(refused.load(Ordering::SeqCst), 0);

    for client in [None, Some("stranger")] {
        let source = HttpSource::new(settings(dir.path(), port, client)).unwrap();
        let err = source
            .get("/v1/births", &[], accept_json)
            .await
            .expect_err("the server refuses this client");
        assert!(
            matches!(err, HttpError::GaveUp { attempts: 2, .. }),
            "{client:?}: {err}"
        );
    }
    assert_eq!(
        answered.load(Ordering::SeqCst),
        1,
        "no request got past the handshake"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 4, "2 clients x 2 attempts");
}
