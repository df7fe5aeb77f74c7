//! Server-side enrichment: the client's IP (trusting `X-Forwarded-For` only
//! from configured proxies), its country and ASN from `.mmdb` files, and OS,
//! browser and device type from the User-Agent. The IP itself is used here
//! and never forwarded or logged.
//!
//! User-Agent strings repeat millions of times, so parses are cached (a
//! sharded map, cleared shard by shard when it grows past its cap).

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use qoe_schema::record::Enrichment;

const UA_SHARDS: usize = 16;
const UA_CACHE_PER_SHARD: usize = 4096;

/// What the User-Agent says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent {
    /// OS family (`Windows 10`, `iPhone`, `Android`, ...).
    pub os: Arc<str>,
    /// Browser family (`Chrome`, `Safari`, ...).
    pub browser: Arc<str>,
    /// `desktop`, `mobile`, `tablet`, `tv`, `console`, `bot` or `other`.
    pub device_type: &'static str,
}

/// Why enrichment could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open {path}: {source}")]
pub struct OpenError {
    path: String,
    #[source]
    source: maxminddb::MaxMindDbError,
}

/// The enrichment tables, shared by every handler.
pub struct Enricher {
    geo: Option<maxminddb::Reader<Vec<u8>>>,
    asn: Option<maxminddb::Reader<Vec<u8>>>,
    trusted_proxies: HashSet<IpAddr>,
    ua_cache: Vec<Mutex<HashMap<Box<str>, UserAgent>>>,
    hasher: std::collections::hash_map::RandomState,
    parser: woothee::parser::Parser,
}

impl Enricher {
    /// Opens the databases (each optional).
    pub fn open(
        geo_db: Option<&Path>,
        asn_db: Option<&Path>,
        trusted_proxies: &[IpAddr],
    ) -> Result<Enricher, OpenError> {
        let open = |p: Option<&Path>| {
            p.map(|path| {
                maxminddb::Reader::open_readfile(path).map_err(|source| OpenError {
                    path: path.display().to_string(),
                    source,
                })
            })
            .transpose()
        };
        Ok(Enricher {
            geo: open(geo_db)?,
            asn: open(asn_db)?,
            trusted_proxies: trusted_proxies.iter().copied().collect(),
            ua_cache: (0..UA_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            parser: woothee::parser::Parser::new(),
        })
    }

    /// The client address: the peer, unless the peer is a trusted proxy, in
    /// which case the last `X-Forwarded-For` entry that is not one.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        header
            .rsplit(',')
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.trusted_proxies.contains(ip))
            .unwrap_or(peer)
    }

    /// Country, ASN, OS, browser and device type for a request.
    pub fn enrich(&self, ip: IpAddr, user_agent: Option<&str>) -> Enrichment {
        let ua = self.user_agent(user_agent.unwrap_or(""));
        Enrichment {
            country: self.country(ip),
            asn: self.asn(ip),
            os: ua.os.to_string(),
            browser: ua.browser.to_string(),
            device_type: ua.device_type.to_owned(),
            ..Enrichment::default()
        }
    }

    fn country(&self, ip: IpAddr) -> String {
        #[derive(Deserialize)]
        struct Iso<'a> {
            iso_code: Option<&'a str>,
        }
        #[derive(Deserialize)]
        struct Record<'a> {
            #[serde(borrow)]
            country_code: Option<&'a str>,
            #[serde(borrow)]
            country: Option<Iso<'a>>,
        }
        let Some(reader) = &self.geo else {
            return String::new();
        };
        match reader.lookup::<Record>(ip) {
            Ok(Some(r)) => r
                .country_code
                .or(r.country.and_then(|c| c.iso_code))
                .unwrap_or("")
                .to_owned(),
            _ => String::new(),
        }
    }

    fn asn(&self, ip: IpAddr) -> u32 {
        #[derive(Deserialize)]
        struct Record {
            autonomous_system_number: Option<u32>,
        }
        let Some(reader) = &self.asn else { return 0 };
        match reader.lookup::<Record>(ip) {
            Ok(Some(r)) => r.autonomous_system_number.unwrap_or(0),
            _ => 0,
        }
    }

    /// Parses (or recalls) a User-Agent.
    pub fn user_agent(&self, ua: &str) -> UserAgent {
        // Cap what is hashed and stored: the header is attacker-controlled.
        let ua = &ua[..floor_char_boundary(ua, 512)];

        let shard = &self.ua_cache[(self.hasher.hash_one(ua) as usize) % UA_SHARDS];
        if let Some(hit) = shard.lock().unwrap_or_else(|e| e.into_inner()).get(ua) {
            return hit.clone();
        }
        let parsed = self.parse_user_agent(ua);
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= UA_CACHE_PER_SHARD {
            map.clear();
        }
        map.insert(ua.into(), parsed.clone());
        parsed
    }

    fn parse_user_agent(&self, ua: &str) -> UserAgent {
        let Some(r) = self.parser.parse(ua) else {
            return UserAgent {
                os: "".into(),
                browser: "".into(),
                device_type: "other",
            };
        };
        let known = |s: &str| if s == "UNKNOWN" { "" } else { s }.into();
        let os: Arc<str> = known(r.os);
        let device_type = match r.category {
            "pc" => "desktop",
            "smartphone" if r.os == "iPad" || ua.contains("Tablet") => "tablet",
            "smartphone" | "mobilephone" => "mobile",
            "crawler" => "bot",
            "appliance"
                if ["PlayStation", "Nintendo", "Xbox"]
                    .iter()
                    .any(|c| ua.contains(c)) =>
            {
                "console"
            }
            "appliance" => "tv",
            _ if ua.contains("SmartTV") || ua.contains("SMART-TV") || ua.contains("Tizen") => "tv",
            _ => "other",
        };
        UserAgent {
            os,
            browser: known(r.name),
            device_type,
        }
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enricher(trusted: &[&str]) -> Enricher {
        let trusted: Vec<IpAddr> = trusted.iter().map(|s| s.parse().unwrap()).collect();
        Enricher::open(None, None, &trusted).unwrap()
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let e = enricher(&["10.0.0.1", "10.0.0.2"]);
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        let spoofed = Some("198.51.100.1, 203.0.113.9");
        // An untrusted peer's header is ignored.
        assert_eq!(e.client_ip(client, spoofed), client);
        // Through two trusted proxies: the last untrusted entry.
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            e.client_ip(proxy, Some("198.51.100.1, 203.0.113.9, 10.0.0.2")),
            client
        );
        assert_eq!(e.client_ip(proxy, None), proxy);
        assert_eq!(e.client_ip(proxy, Some("garbage")), proxy);
    }

    #[test]
    fn user_agents_by_device() {
        let e = enricher(&[]);
        let chrome = e.user_agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(
            (chrome.browser.as_ref(), chrome.device_type),
            ("Chrome", "desktop")
        );
        let iphone = e.user_agent(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(iphone.device_type, "mobile");
        assert_eq!(iphone.os.as_ref(), "iPhone");
        let bot = e.user_agent("Googlebot/2.1 (+http://www.google.com/bot.html)");
        assert_eq!(bot.device_type, "bot");
        assert_eq!(e.user_agent("").device_type, "other");
        // Cached answers are the same answers.
        assert_eq!(
            e.user_agent("Googlebot/2.1 (+http://www.google.com/bot.html)"),
            bot
        );
        let huge = "é".repeat(10_000);
        let _ = e.user_agent(&huge);
    }

    #[test]
    fn country_from_the_mmdb() {
        use qoe_testkit::mmdb::{write, Value};
        // Both record shapes: DB-IP/ip-location-db's flat `country_code`
        // and GeoLite2's `country.iso_code` are read; here the flat one.
        let path = write("country", 8, "country_code", Value::Str("US"));
        let e = Enricher::open(Some(&path), None, &[]).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(e.country("8.8.8.8".parse().unwrap()), "US");
        assert_eq!(e.country("10.1.2.3".parse().unwrap()), "");
        assert_eq!(
            e.enrich("8.8.4.4".parse().unwrap(), None).asn,
            0,
            "no ASN database"
        );
    }

    /// Opens an enricher whose ASN database is `bytes`, written to a
    /// temporary file named after `test` (removed again before returning).
    fn open_asn_db(test: &str, bytes: &[u8]) -> (Result<Enricher, OpenError>, String) {
        let path = std::env::temp_dir().join(format!("qoe-{test}-{}.mmdb", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let e = Enricher::open(None, Some(&path), &[]);
        std::fs::remove_file(&path).unwrap();
        (e, path.display().to_string())
    }

    #[test]
    fn asn_from_the_mmdb_when_configured() {
        let db = qoe_testkit::mmdb::one_network(
            8,
            "autonomous_system_number",
            qoe_testkit::mmdb::Value::U32(64_500),
        );
        let e = open_asn_db("asn", &db).0.unwrap();
        assert_eq!(e.asn("8.8.8.8".parse().unwrap()), 64_500);
        assert_eq!(e.asn("8.255.0.1".parse().unwrap()), 64_500);
        assert_eq!(e.asn("9.0.0.1".parse().unwrap()), 0);
        assert_eq!(e.asn("10.1.2.3".parse().unwrap()), 0);
        let enriched = e.enrich("8.8.4.4".parse().unwrap(), None);
        assert_eq!(enriched.asn, 64_500);
        assert_eq!(enriched.country, "", "no country database configured");
    }

    #[test]
    fn a_file_that_is_not_an_mmdb_is_refused_with_its_path() {
        let (e, path) = open_asn_db("not-mmdb", b"not a database");
        let err = e.err().expect("a non-mmdb file must not open");
        assert!(err.to_string().contains(&path), "{err}");
    }
}
