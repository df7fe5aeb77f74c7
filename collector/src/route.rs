//! Which route a request takes: the listener it came in on and its path
//! give the wire format, and for beacons and CMCD reports the property key
//! when the path holds it.

use qoe_schema::record::Source;

/// The listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `[http]`: beacons and CMCD reports.
    Ingest,
    /// `[mux_embed]`: mux-embed beacons.
    MuxEmbed,
}

/// The wire format a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Beacon,
    Cmcd,
    MuxEmbed,
}

impl Format {
    /// The `route` label of the request metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Format::Beacon => "beacon",
            Format::Cmcd => "cmcd",
            Format::MuxEmbed => "mux-embed",
        }
    }

    /// The `source` its records are marked with.
    pub(crate) fn source(self) -> Source {
        match self {
            Format::Beacon => Source::Beacon,
            Format::Cmcd => Source::Cmcd,
            Format::MuxEmbed => Source::MuxEmbed,
        }
    }

    /// The `Content-Type`s it is posted with (browsers' CORS-free
    /// `text/plain` among them).
    pub(crate) fn content_types(self) -> &'static [&'static str] {
        match self {
            Format::Beacon => &["application/json", "text/plain"],
            Format::Cmcd => &["application/cmcd", "text/cmcd", "text/plain"],
            Format::MuxEmbed => &["text/plain", "application/json"],
        }
    }
}

/// An ingest route: its format and the key in its path, if any.
pub(crate) struct Route<'a> {
    pub(crate) format: Format,
    pub(crate) key: Option<&'a str>,
}

impl<'a> Route<'a> {
    /// The route of `path` on `listener`; the mux-embed listener serves
    /// `mux_path` alone.
    pub(crate) fn of(listener: Listener, path: &'a str, mux_path: &str) -> Option<Route<'a>> {
        if listener == Listener::MuxEmbed {
            return (path == mux_path).then_some(Route {
                format: Format::MuxEmbed,
                key: None,
            });
        }
        let (format, rest) = if let Some(rest) = path.strip_prefix("/v1/beacon") {
            (Format::Beacon, rest)
        } else {
            (Format::Cmcd, path.strip_prefix("/v1/cmcd")?)
        };
        let key = match rest {
            "" | "/" => None,
            _ if rest.starts_with('/') && !rest[1..].contains('/') => Some(&rest[1..]),
            _ => return None,
        };
        Some(Route { format, key })
    }
}

/// The `key` parameter of a query string, if not empty.
pub(crate) fn query_key(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(listener: Listener, path: &str) -> Option<(Format, Option<&str>)> {
        Route::of(listener, path, "/").map(|r| (r.format, r.key))
    }

    #[test]
    fn each_listener_serves_its_own_paths() {
        use Listener::{Ingest, MuxEmbed};
        assert_eq!(
            of(Ingest, "/v1/beacon/k"),
            Some((Format::Beacon, Some("k")))
        );
        assert_eq!(of(Ingest, "/v1/beacon"), Some((Format::Beacon, None)));
        assert_eq!(of(Ingest, "/v1/cmcd/k"), Some((Format::Cmcd, Some("k"))));
        assert_eq!(of(Ingest, "/v1/cmcd/"), Some((Format::Cmcd, None)));
        assert_eq!(of(Ingest, "/v1/cmcd/k/x"), None);
        assert_eq!(of(Ingest, "/"), None, "mux-embed has a listener of its own");
        assert_eq!(of(MuxEmbed, "/"), Some((Format::MuxEmbed, None)));
        assert_eq!(of(MuxEmbed, "/v1/beacon/k"), None);
        assert_eq!(query_key(Some("a=1&key=k")), Some("k"));
        assert_eq!(query_key(Some("key=")), None);
    }
}
