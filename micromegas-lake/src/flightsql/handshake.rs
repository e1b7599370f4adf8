//! The Flight handshake: clients authenticate once (HTTP Basic, the token as the password, or
//! a bearer token) and get back the bearer token to send on every later call.

use arrow_flight::HandshakeResponse;
use base64::Engine;
use futures::Stream;
use std::pin::Pin;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Response, Status};

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// The token a client presents in `authorization`: the password of HTTP Basic (the user name
/// is ignored) or the bearer token. `None` when the header is absent.
fn presented(metadata: &MetadataMap) -> Result<Option<String>, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Status::invalid_argument("the authorization header is not ASCII text"))?;
    if let Some(basic) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .map_err(|_| Status::invalid_argument("Basic credentials are not valid base64"))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| Status::invalid_argument("Basic credentials are not UTF-8"))?;
        let (_user, password) = text
            .split_once(':')
            .ok_or_else(|| Status::invalid_argument("Basic credentials must be `user:password`"))?;
        return Ok(Some(password.to_owned()));
    }
    if let Some(bearer) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Ok(Some(bearer.trim().to_owned()));
    }
    Err(Status::invalid_argument(
        "unsupported authorization scheme: use Basic (token as password) or Bearer",
    ))
}

/// Checks the presented token and answers with the bearer token to use from now on. With no
/// token configured, any credentials (or none) are accepted: Grafana insists on sending some.
/// `accepts` tells whether an `Authorization` header value names an accepted token.
pub(crate) fn answer(
    accepts: impl Fn(&str) -> bool,
    metadata: &MetadataMap,
) -> Result<Response<HandshakeStream>, Status> {
    let token = presented(metadata)?.unwrap_or_default();
    if !accepts(&format!("Bearer {token}")) {
        return Err(Status::unauthenticated(
            "wrong or missing token: authenticate with one of the server's tokens (the \
             password of Basic auth, or a bearer token)",
        ));
    }
    let token = if token.is_empty() {
        "anonymous".to_owned()
    } else {
        token
    };
    let header = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| Status::invalid_argument("the token is not valid header text"))?;
    let reply = HandshakeResponse {
        protocol_version: 0,
        payload: token.into_bytes().into(),
    };
    let mut response: Response<HandshakeStream> =
        Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
    response.metadata_mut().insert("authorization", header);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Tokens;

    fn answer(
        tokens: &Tokens,
        metadata: &MetadataMap,
    ) -> Result<Response<HandshakeStream>, Status> {
        super::answer(|h| tokens.accepts(Some(h)), metadata)
    }

    fn with(header: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", header.parse().unwrap());
        m
    }

    #[test]
    fn basic_password_or_bearer_is_the_token() {
        let tokens = Tokens::new(["s3cret".to_owned()]);
        let basic = base64::engine::general_purpose::STANDARD.encode("grafana:s3cret");
        assert!(answer(&tokens, &with(&format!("Basic {basic}"))).is_ok());
        assert!(answer(&tokens, &with("Bearer s3cret")).is_ok());
        let wrong = base64::engine::general_purpose::STANDARD.encode("grafana:nope");
        let err = answer(&tokens, &with(&format!("Basic {wrong}")))
            .err()
            .unwrap();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert_eq!(
            answer(&tokens, &MetadataMap::new()).err().unwrap().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            answer(&tokens, &with("Digest x")).err().unwrap().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn open_server_accepts_any_credentials() {
        let open = Tokens::default();
        let r = answer(&open, &MetadataMap::new()).unwrap();
        assert_eq!(
            r.metadata().get("authorization").unwrap(),
            "Bearer anonymous"
        );
        assert!(answer(&open, &with("Bearer whatever")).is_ok());
    }
}
