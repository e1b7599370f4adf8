//! Optional bearer-token authentication: with tokens configured, a request without
//! `Authorization: Bearer <token>` naming one of them is refused (gRPC UNAUTHENTICATED, HTTP
//! 401) and nothing is written or read.

use std::sync::Arc;

/// The accepted tokens; empty means authentication is off.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Arc<Vec<String>>);

impl Tokens {
    /// Accepts any of `tokens` (empty strings are ignored).
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Self(Arc::new(
            tokens.into_iter().filter(|t| !t.is_empty()).collect(),
        ))
    }

    /// True when no token is configured.
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an `Authorization` header value is accepted.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(given) = authorization.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        }) else {
            return false;
        };
        let given = given.trim().as_bytes();
        // Compare every token in full, so timing does not tell how much of one matched.
        self.0.iter().fold(false, |ok, t| {
            let t = t.as_bytes();
            let same = t.len() == given.len()
                && t.iter().zip(given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            ok | same
        })
    }

    /// A tonic interceptor enforcing the tokens.
    pub fn interceptor(
        &self,
    ) -> impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
        let tokens = self.clone();
        move |req: tonic::Request<()>| {
            let header = req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if tokens.accepts(header) {
                Ok(req)
            } else {
                Err(tonic::Status::unauthenticated(
                    "missing or wrong bearer token (Authorization: Bearer <token>)",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens() {
        assert!(Tokens::default().accepts(None));
        let t = Tokens::new(["a1".to_owned(), "b2".to_owned()]);
        assert!(t.accepts(Some("Bearer a1")));
        assert!(t.accepts(Some("Bearer b2")));
        assert!(!t.accepts(Some("Bearer a")));
        assert!(!t.accepts(Some("a1")));
        assert!(!t.accepts(None));
    }
}
