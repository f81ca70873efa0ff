//! Measures how long a revocation takes to reach another instance's cached authenticator.
//!
//! `tessera-propagation A_URL B_URL USERNAME PASSWORD CLIENT [COUNT]`: COUNT times, logs in on A,
//! warms B's cache with the token (`/api/hello-cached/`), logs out on A, and polls B until it
//! refuses the token. Prints p50, p90, p99 and the maximum of the time from the logout's answer to
//! B's refusal (which includes one request's round trip).

use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [a, b, user, password, client, rest @ ..] = args.as_slice() else {
        eprintln!("usage: tessera-propagation A_URL B_URL USERNAME PASSWORD CLIENT [COUNT]");
        std::process::exit(2);
    };
    let count: usize = rest.first().map(|c| c.parse()).transpose()?.unwrap_or(200);
    let http = reqwest::Client::new();
    let body = serde_json::json!({"username": user, "password": password, "client": client});
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let login: serde_json::Value =
            http.post(format!("{a}/api/auth/login/")).json(&body).send().await?.error_for_status()?.json().await?;
        let token = login["token"].as_str().ok_or("login returned no token")?.to_string();
        let auth = format!("Token {token}");
        for _ in 0..2 {
            http.get(format!("{b}/api/hello-cached/"))
                .header("Authorization", &auth)
                .send()
                .await?
                .error_for_status()?;
        }
        http.post(format!("{a}/api/auth/logout/")).header("Authorization", &auth).send().await?.error_for_status()?;
        let start = Instant::now();
        loop {
            let status =
                http.get(format!("{b}/api/hello-cached/")).header("Authorization", &auth).send().await?.status();
            if status.as_u16() == 401 {
                break;
            }
            if start.elapsed() > Duration::from_secs(5) {
                return Err("B still accepts a logged-out token after 5 s".into());
            }
        }
        samples.push(start.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "revocation propagation over {} revocations: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.90).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
    );
    Ok(())
}
