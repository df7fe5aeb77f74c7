//! Read tokens: `Authorization: Bearer <token>` names the property whose
//! data the request may read.

use std::collections::BTreeMap;

use crate::error::RequestError;

/// The configured tokens and their properties.
pub struct Tokens {
    tokens: Vec<(Vec<u8>, String)>,
}

impl Tokens {
    pub fn new(read_tokens: &BTreeMap<String, String>) -> Tokens {
        Tokens {
            tokens: read_tokens
                .iter()
                .map(|(t, p)| (t.as_bytes().to_vec(), p.clone()))
                .collect(),
        }
    }

    /// The property an `Authorization` header value grants: 401 without a
    /// valid bearer token. Every configured token is compared, each in
    /// constant time, so the answer's timing says nothing about them.
    pub fn property(&self, header: Option<&[u8]>) -> Result<&str, RequestError> {
        let unauthorized = || {
            RequestError::new(
                401,
                "unauthorized",
                "send `Authorization: Bearer <read token>`",
            )
        };
        let given = header
            .and_then(|h| h.strip_prefix(b"Bearer "))
            .ok_or_else(unauthorized)?;
        let mut granted = None;
        for (token, property) in &self.tokens {
            if constant_time_eq(token, given) {
                granted = Some(property.as_str());
            }
        }
        granted.ok_or_else(unauthorized)
    }
}

/// Whether `a == b`, taking time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_grants_its_property_only() {
        let tokens = Tokens::new(&BTreeMap::from([
            ("token-for-prop-a-0001".to_owned(), "a".to_owned()),
            ("token-for-prop-a-0002".to_owned(), "a".to_owned()),
            ("token-for-prop-b-0001".to_owned(), "b".to_owned()),
        ]));
        let ask = |h: &str| tokens.property(Some(h.as_bytes())).map(str::to_owned);
        assert_eq!(ask("Bearer token-for-prop-a-0002"), Ok("a".into()));
        assert_eq!(ask("Bearer token-for-prop-b-0001"), Ok("b".into()));
        for bad in [
            "Bearer token-for-prop-a-000",
            "Bearer token-for-prop-a-00011",
            "bearer token-for-prop-a-0001",
            "token-for-prop-a-0001",
            "Bearer ",
        ] {
            assert_eq!(ask(bad).unwrap_err().status, 401, "{bad}");
        }
        assert_eq!(tokens.property(None).unwrap_err().code, "unauthorized");
    }

    #[test]
    fn equality_in_constant_time_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
