//! The query string: decoded, checked and turned into typed parameters.
//! Every refusal is a 400 naming the parameter, with a stable code.

use qoe_schema::metrics::{Filter, FilterValue, Range};

use crate::catalog::{dimension, Measurement};
use crate::error::RequestError;

/// Most `filters[]` one request may carry.
pub const MAX_FILTERS: usize = 20;
/// Longest filter value, bytes.
pub const MAX_FILTER_VALUE: usize = 256;

/// The parameters every metric route shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub range: Range,
    pub filters: Vec<FilterParam>,
    pub measurement: Option<Measurement>,
    /// `property_id`, when the caller named one.
    pub property: Option<String>,
}

/// One `filters[]` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterParam {
    /// The `views` column (from the catalog, never user text).
    pub column: &'static str,
    pub value: String,
    /// The column holds numbers (the value parsed as one).
    pub numeric: bool,
    /// `!dimension:value`.
    pub negate: bool,
}

impl Common {
    /// A read of `property` over this range with `filters` (from
    /// [`Common::filters`]).
    pub fn read<'a>(
        &self,
        route: &'static str,
        property: &'a str,
        filters: &'a [Filter<'a>],
        now: u32,
    ) -> crate::store::Read<'a> {
        crate::store::Read {
            route,
            property,
            range: self.range,
            filters,
            now,
        }
    }

    /// The filters as `schema::metrics` takes them.
    pub fn filters(&self) -> Vec<Filter<'_>> {
        self.filters
            .iter()
            .map(|f| Filter {
                column: f.column,
                value: if f.numeric {
                    FilterValue::Number(f.value.parse().unwrap_or_default())
                } else {
                    FilterValue::Text(&f.value)
                },
                negate: f.negate,
            })
            .collect()
    }
}

/// Decodes `query` into `(key, value)` pairs (percent-decoding, `+` as
/// space), refusing bytes that are not UTF-8.
pub fn pairs(query: &str) -> Result<Vec<(String, String)>, RequestError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(k).ok_or_else(|| malformed(k))?;
            let value = decode(v).ok_or_else(|| malformed(&key))?;
            Ok((key, value))
        })
        .collect()
}

fn malformed(parameter: &str) -> RequestError {
    RequestError::bad(
        "malformed_query",
        parameter,
        "the query string is not valid percent-encoded UTF-8",
    )
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Checks that every key is one of `allowed` (the common ones included).
pub fn only(pairs: &[(String, String)], allowed: &[&str]) -> Result<(), RequestError> {
    const COMMON: &[&str] = &["timeframe[]", "filters[]", "measurement", "property_id"];
    match pairs
        .iter()
        .find(|(k, _)| !COMMON.contains(&k.as_str()) && !allowed.contains(&k.as_str()))
    {
        Some((k, _)) => Err(RequestError::bad(
            "unknown_parameter",
            k,
            format!("unknown parameter `{k}`"),
        )),
        None => Ok(()),
    }
}

/// The common parameters, at `now` (epoch seconds) with data kept for
/// `retention_s`.
pub fn common(
    pairs: &[(String, String)],
    now: u32,
    retention_s: u32,
) -> Result<Common, RequestError> {
    let values = |key: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let range = timeframe(&values("timeframe[]"), now, retention_s)?;
    let mut filters = Vec::new();
    let given = values("filters[]");
    if given.len() > MAX_FILTERS {
        return Err(RequestError::bad(
            "too_many_filters",
            "filters[]",
            format!("at most {MAX_FILTERS} filters"),
        ));
    }
    for f in given {
        filters.push(filter(f)?);
    }
    let measurement = match single(pairs, "measurement")? {
        None => None,
        Some(m) => Some(Measurement::parse(m).ok_or_else(|| {
            RequestError::bad(
                "invalid_measurement",
                "measurement",
                "measurement must be one of count, sum, avg, percentage, median, 90th, 95th",
            )
        })?),
    };
    let property = single(pairs, "property_id")?.map(str::to_owned);
    Ok(Common {
        range,
        filters,
        measurement,
        property,
    })
}

/// How a breakdown's rows are chosen and ordered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Listing {
    /// The `views` column grouped by (from the catalog).
    pub group_by: &'static str,
    pub order_by: OrderBy,
    pub descending: bool,
    pub limit: usize,
    /// 1-based.
    pub page: usize,
}

/// What breakdown rows are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    Value,
    Views,
    NegativeImpact,
}

/// Most rows one page may hold.
pub const MAX_LIMIT: usize = 1000;

/// The keys [`listing`] reads.
pub const LISTING: &[&str] = &["group_by", "order_by", "order_direction", "limit", "page"];

/// `group_by` (required), `order_by=value|views|negative_impact`
/// (default `negative_impact`), `order_direction=asc|desc` (default
/// `desc`), `limit` (1 to 1000, default 25) and `page` (from 1).
pub fn listing(pairs: &[(String, String)]) -> Result<Listing, RequestError> {
    let group = single(pairs, "group_by")?.ok_or_else(|| {
        RequestError::bad(
            "missing_parameter",
            "group_by",
            "a breakdown needs group_by=<dimension> (GET /v1/dimensions lists them)",
        )
    })?;
    let group_by = dimension(group)
        .ok_or_else(|| {
            RequestError::bad(
                "unknown_dimension",
                "group_by",
                format!("`{group}` is not a dimension (GET /v1/dimensions lists them)"),
            )
        })?
        .column;
    let order_by = match single(pairs, "order_by")?.unwrap_or("negative_impact") {
        "value" => OrderBy::Value,
        "views" => OrderBy::Views,
        "negative_impact" => OrderBy::NegativeImpact,
        other => {
            return Err(RequestError::bad(
                "invalid_order",
                "order_by",
                format!("`{other}`: order by value, views or negative_impact"),
            ))
        }
    };
    let descending = match single(pairs, "order_direction")?.unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => {
            return Err(RequestError::bad(
                "invalid_order",
                "order_direction",
                format!("`{other}`: use asc or desc"),
            ))
        }
    };
    let (limit, page) = paging(pairs)?;
    Ok(Listing {
        group_by,
        order_by,
        descending,
        limit,
        page,
    })
}

/// `limit` (1 to 1000, default 25) and `page` (from 1, default 1).
pub fn paging(pairs: &[(String, String)]) -> Result<(usize, usize), RequestError> {
    let number = |key: &str, default: usize, max: usize| -> Result<usize, RequestError> {
        let given = single(pairs, key)?;
        match given {
            None => Ok(default),
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    RequestError::bad(
                        "invalid_page",
                        key,
                        format!("`{key}` must be a whole number from 1 to {max}"),
                    )
                }),
        }
    };
    Ok((
        number("limit", 25, MAX_LIMIT)?,
        number("page", 1, 1_000_000)?,
    ))
}

/// Most buckets one timeseries may hold.
pub const MAX_BUCKETS: u32 = 10_000;

/// A timeseries' bucket length in seconds: `group_by=minute|ten_minutes|
/// hour|day`, by default following the range (up to 90 minutes by
/// minute, 6 hours by ten minutes, 15 days by hour, else by day).
pub fn step(pairs: &[(String, String)], range: Range) -> Result<u32, RequestError> {
    let len = range.to - range.from;
    let step = match single(pairs, "group_by")? {
        None if len <= 90 * 60 => 60,
        None if len <= 6 * 3600 => 600,
        None if len <= 15 * 86_400 => 3600,
        None => 86_400,
        Some("minute") => 60,
        Some("ten_minutes") => 600,
        Some("hour") => 3600,
        Some("day") => 86_400,
        Some(other) => {
            return Err(RequestError::bad(
                "invalid_granularity",
                "group_by",
                format!("`{other}`: use minute, ten_minutes, hour or day"),
            ))
        }
    };
    if len / step >= MAX_BUCKETS {
        return Err(RequestError::bad(
            "too_many_buckets",
            "group_by",
            format!("over {MAX_BUCKETS} buckets: use a coarser group_by or a shorter timeframe"),
        ));
    }
    Ok(step)
}

/// The value of `key`, if given; a 400 if given more than once.
pub(crate) fn single<'p>(
    pairs: &'p [(String, String)],
    key: &str,
) -> Result<Option<&'p str>, RequestError> {
    let mut found = pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str());
    let first = found.next();
    match found.next() {
        Some(_) => Err(once(key)),
        None => Ok(first),
    }
}

fn once(parameter: &str) -> RequestError {
    RequestError::bad(
        "repeated_parameter",
        parameter,
        format!("`{parameter}` may be given once"),
    )
}

/// `timeframe[]=FROM&timeframe[]=TO` (epoch seconds) or one
/// `timeframe[]=N:minutes|hours|days` ending now; 24 hours by default.
fn timeframe(given: &[&str], now: u32, retention_s: u32) -> Result<Range, RequestError> {
    let bad = |message: String| RequestError::bad("invalid_timeframe", "timeframe[]", message);
    let range = match given {
        [] => Range {
            from: now.saturating_sub(86_400),
            to: now,
        },
        [relative] => {
            let (n, unit) = relative.split_once(':').ok_or_else(|| {
                bad(
                    "use timeframe[]=FROM&timeframe[]=TO (epoch seconds) or timeframe[]=24:hours"
                        .into(),
                )
            })?;
            let n: u32 = n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(format!("`{n}` is not a positive whole number")))?;
            let unit_s = match unit {
                "minutes" => 60,
                "hours" => 3600,
                "days" => 86_400,
                _ => return Err(bad(format!("unit `{unit}`: use minutes, hours or days"))),
            };
            Range {
                from: now.saturating_sub(n.saturating_mul(unit_s)),
                to: now,
            }
        }
        [from, to] => {
            let second = |s: &str| -> Result<u32, RequestError> {
                s.parse()
                    .map_err(|_| bad(format!("`{s}` is not a time in epoch seconds")))
            };
            Range {
                from: second(from)?,
                to: second(to)?,
            }
        }
        _ => return Err(bad("give one relative timeframe or two times".into())),
    };
    if range.from >= range.to {
        return Err(bad("the timeframe must start before it ends".into()));
    }
    if range.from < now.saturating_sub(retention_s) {
        return Err(RequestError::bad(
            "timeframe_beyond_retention",
            "timeframe[]",
            format!(
                "data is kept for {} days: the timeframe may start at {} at the earliest",
                retention_s / 86_400,
                now.saturating_sub(retention_s)
            ),
        ));
    }
    Ok(range)
}

/// `dimension:value`, or `!dimension:value` for "not".
fn filter(given: &str) -> Result<FilterParam, RequestError> {
    let (negate, rest) = match given.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, given),
    };
    let (name, value) = rest.split_once(':').ok_or_else(|| {
        RequestError::bad(
            "invalid_filter",
            "filters[]",
            format!("`{given}`: use filters[]=dimension:value or filters[]=!dimension:value"),
        )
    })?;
    let dim = dimension(name).ok_or_else(|| {
        RequestError::bad(
            "unknown_dimension",
            "filters[]",
            format!("`{name}` is not a dimension (GET /v1/dimensions lists them)"),
        )
    })?;
    if value.len() > MAX_FILTER_VALUE {
        return Err(RequestError::bad(
            "invalid_filter",
            "filters[]",
            format!("a filter value is at most {MAX_FILTER_VALUE} bytes"),
        ));
    }
    if dim.numeric && value.parse::<u32>().is_err() {
        return Err(RequestError::bad(
            "invalid_filter",
            "filters[]",
            format!("`{name}` takes a whole number, not `{value}`"),
        ));
    }
    Ok(FilterParam {
        column: dim.column,
        value: value.to_owned(),
        numeric: dim.numeric,
        negate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u32 = 1_800_000_000;
    const KEEP: u32 = 31 * 86_400;

    fn parse(q: &str) -> Result<Common, RequestError> {
        let p = pairs(q)?;
        only(&p, &[])?;
        common(&p, NOW, KEEP)
    }

    fn code(q: &str) -> (&'static str, Option<String>) {
        let e = parse(q).unwrap_err();
        assert_eq!(e.status, 400);
        (e.code, e.parameter)
    }

    #[test]
    fn timeframes() {
        let r = parse("").unwrap().range;
        assert_eq!((r.from, r.to), (NOW - 86_400, NOW));
        let r = parse("timeframe%5B%5D=7:days").unwrap().range;
        assert_eq!((r.from, r.to), (NOW - 7 * 86_400, NOW));
        let r = parse("timeframe[]=1799990000&timeframe[]=1799999000")
            .unwrap()
            .range;
        assert_eq!((r.from, r.to), (1_799_990_000, 1_799_999_000));
        for bad in [
            "timeframe[]=5:weeks",
            "timeframe[]=0:hours",
            "timeframe[]=yesterday",
            "timeframe[]=10&timeframe[]=5",
            "timeframe[]=1&timeframe[]=2&timeframe[]=3",
        ] {
            assert_eq!(code(bad).0, "invalid_timeframe", "{bad}");
        }
        assert_eq!(code("timeframe[]=60:days").0, "timeframe_beyond_retention");
    }

    #[test]
    fn filters_name_a_known_dimension_and_keep_their_value_as_data() {
        let c = parse("filters[]=country:US&filters[]=!cdn:akamai&filters[]=asn:3320").unwrap();
        let f = |column, value: &str, numeric, negate| FilterParam {
            column,
            value: value.into(),
            numeric,
            negate,
        };
        assert_eq!(c.filters[0], f("country", "US", false, false));
        assert_eq!(c.filters[1], f("cdn", "akamai", false, true));
        assert_eq!(c.filters[2], f("asn", "3320", true, false));
        // An injection attempt is a value like any other.
        let c = parse("filters[]=video_title:x%27%20OR%201%3D1%20--").unwrap();
        assert_eq!(c.filters[0].value, "x' OR 1=1 --");
        assert_eq!(code("filters[]=planet:mars").0, "unknown_dimension");
        assert_eq!(code("filters[]=country").0, "invalid_filter");
        assert_eq!(code("filters[]=asn:x").0, "invalid_filter");
        let many = vec!["filters[]=country:US"; MAX_FILTERS + 1].join("&");
        assert_eq!(code(&many).0, "too_many_filters");
    }

    #[test]
    fn timeseries_steps_follow_the_range() {
        let s = |q: &str, len: u32| {
            step(
                &pairs(q).unwrap(),
                Range {
                    from: NOW - len,
                    to: NOW,
                },
            )
        };
        assert_eq!(s("", 90 * 60).unwrap(), 60);
        assert_eq!(s("", 6 * 3600).unwrap(), 600);
        assert_eq!(s("", 15 * 86_400).unwrap(), 3600);
        assert_eq!(s("", 30 * 86_400).unwrap(), 86_400);
        assert_eq!(s("group_by=hour", 600).unwrap(), 3600);
        assert_eq!(
            s("group_by=fortnight", 600).unwrap_err().code,
            "invalid_granularity"
        );
        assert_eq!(
            s("group_by=minute", 30 * 86_400).unwrap_err().code,
            "too_many_buckets"
        );
    }

    #[test]
    fn listings() {
        let l = |q: &str| listing(&pairs(q).unwrap());
        let d = l("group_by=operating_system").unwrap();
        assert_eq!(
            d,
            Listing {
                group_by: "os",
                order_by: OrderBy::NegativeImpact,
                descending: true,
                limit: 25,
                page: 1
            }
        );
        let d = l("group_by=cdn&order_by=views&order_direction=asc&limit=1000&page=3").unwrap();
        assert_eq!(
            (d.order_by, d.descending, d.limit, d.page),
            (OrderBy::Views, false, 1000, 3)
        );
        for (q, code, parameter) in [
            ("", "missing_parameter", "group_by"),
            ("group_by=planet", "unknown_dimension", "group_by"),
            ("group_by=cdn&order_by=mood", "invalid_order", "order_by"),
            (
                "group_by=cdn&order_direction=up",
                "invalid_order",
                "order_direction",
            ),
            ("group_by=cdn&limit=1001", "invalid_page", "limit"),
            ("group_by=cdn&limit=0", "invalid_page", "limit"),
            ("group_by=cdn&page=-1", "invalid_page", "page"),
            ("group_by=cdn&group_by=os", "repeated_parameter", "group_by"),
        ] {
            let e = l(q).unwrap_err();
            assert_eq!(
                (e.code, e.parameter.as_deref()),
                (code, Some(parameter)),
                "{q}"
            );
        }
    }

    #[test]
    fn unknown_repeated_and_malformed_parameters() {
        assert_eq!(
            code("limitt=5"),
            ("unknown_parameter", Some("limitt".into()))
        );
        assert_eq!(code("measurement=p99").0, "invalid_measurement");
        assert_eq!(
            code("measurement=median&measurement=avg").0,
            "repeated_parameter"
        );
        assert_eq!(code("filters[]=country:%ZZ").0, "malformed_query");
        assert_eq!(code("filters[]=country:%C3%28").0, "malformed_query");
        assert_eq!(
            parse("property_id=p1").unwrap().property.as_deref(),
            Some("p1")
        );
    }
}
