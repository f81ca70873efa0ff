//! A service's request span says who called: once a request is authenticated, Tessera records
//! `user_id` and `client` on the current span when it declares them (never the token).

use axum::Router;
use axum::routing::get;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tessera_axum::Authenticated;
use tessera_axum::testing::TestKit;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The values recorded on spans named `request`, by field name.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<HashMap<String, String>>>);

impl Visit for Recorded {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut values = self.0.lock().unwrap_or_else(|p| p.into_inner());
        values.insert(field.name().to_string(), format!("{value:?}"));
    }
}

struct RequestSpans(Recorded, Arc<Mutex<Option<Id>>>);

impl<S: tracing::Subscriber> Layer<S> for RequestSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "request" {
            *self.1.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
            attrs.record(&mut self.0.clone());
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if self.1.lock().unwrap_or_else(|p| p.into_inner()).as_ref() == Some(id) {
            values.record(&mut self.0.clone());
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_request_span_names_the_user_and_the_client() {
    let recorded = Recorded::default();
    let layer = RequestSpans(recorded.clone(), Arc::default());
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let kit = TestKit::new().await;
    let alice = kit.user("alice").await;
    let web = kit.client("web").await;
    let token = kit.token(&alice, &web).await;
    let app: Router = Router::new()
        .route("/me", get(|auth: Authenticated| async move { auth.user.username.to_string() }))
        .layer(kit.tessera().layer())
        .layer(axum::middleware::from_fn(|req: axum::extract::Request, next: axum::middleware::Next| async move {
            use tracing::Instrument;
            let span = tracing::info_span!("request", user_id = tracing::field::Empty, client = tracing::field::Empty);
            next.run(req).instrument(span).await
        }));

    assert_eq!(kit.get(&app, "/me", Some(&token)).await.status, 200);
    let values = recorded.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(values.get("user_id"), Some(&alice.id.to_string()), "{values:?}");
    assert_eq!(values.get("client").map(String::as_str), Some("web"), "{values:?}");
    assert!(values.values().all(|v| !v.contains(&token)), "never the token: {values:?}");
}
