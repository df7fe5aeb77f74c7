//! The golden cases themselves: one function per case, the beacons first,
//! then the numbers a person worked out for them.

use serde_json::json;

use super::{Case, Check, ViewWriter};
use crate::metrics::Overview;

const HOUR: i64 = 3600;
pub(crate) const DAY: i64 = 86_400;

/// The day the cases happen on, and "now" a day after it started: every
/// view without a `viewend` has passed its inactivity timeout by then.
fn day(expect: Overview) -> Vec<Check> {
    vec![Check {
        range: (0, DAY),
        now: DAY,
        expect,
    }]
}

/// An overview with every metric zero; a case names what is not.
const ZERO: Overview = Overview {
    views: 0,
    unique_viewers: 0,
    watch_time_ms: 0,
    playing_time_ms: 0,
    ended_in_range: 0,
    playback_failure_pct: 0.0,
    exits_before_start_pct: 0.0,
    startup_time_ms_p50: 0,
    startup_time_ms_p90: 0,
    startup_time_ms_p95: 0,
    rebuffer_pct: 0.0,
    rebuffer_frequency_per_min: 0.0,
    rebuffer_duration_ms_per_view: 0.0,
    avg_bitrate_kbps: 0.0,
};

/// Every golden case.
pub fn cases() -> Vec<Case> {
    vec![
        readme_example(),
        exit_before_start(),
        failure_before_start(),
        failure_mid_view(),
        rebuffer_then_viewend(),
        pause_not_counted(),
        seek(),
        abandoned_by_timeout(),
        duplicates_and_reordering(),
        crossing_midnight(),
        live_view(),
        viewers_and_quantiles(),
    ]
}

fn readme_example() -> Case {
    let beacons = ViewWriter::new("readme", "u-91", HOUR)
        .with(json!({"stream_type": "live"}))
        .at(1, "viewstart", 0, json!({}))
        .at(2, "playerready", 300, json!({"player_name": "web-player", "player_version": "3.2.1"}))
        .at(3, "play", 500, json!({"autoplay": true, "play_requested": true}))
        .at(4, "playing", 1350, json!({"startup_time_ms": 850, "watch_time_ms": 850, "bitrate_kbps": 4500}))
        .at(5, "heartbeat", 11_350, json!({"watch_time_ms": 10_850, "playing_time_ms": 10_000, "avg_bitrate_kbps": 4500, "playhead_ms": 10_000}))
        .at(6, "pause", 15_000, json!({"watch_time_ms": 14_500, "playing_time_ms": 13_650, "playhead_ms": 13_650, "state": "paused"}))
        .at(7, "seeking", 16_000, json!({"playhead_ms": 14_000, "state": "seeking"}))
        .at(8, "seeked", 16_400, json!({"watch_time_ms": 14_900, "playhead_ms": 60_000, "state": "playing"}))
        .at(9, "rebufferstart", 17_000, json!({"watch_time_ms": 15_500, "playing_time_ms": 14_250, "rebuffer_count": 1, "state": "rebuffering"}))
        .at(10, "rebufferend", 19_500, json!({"watch_time_ms": 18_000, "rebuffer_duration_ms": 2500, "state": "playing"}))
        .at(11, "renditionchange", 20_000, json!({"watch_time_ms": 18_500, "playing_time_ms": 14_750, "bitrate_kbps": 2500}))
        // 14 750 ms at 4500 then 1000 ms at 2500: (66 375 000 + 2 500 000) / 15 750 = 4373.
        .at(12, "error", 21_000, json!({"watch_time_ms": 19_500, "playing_time_ms": 15_750, "avg_bitrate_kbps": 4373,
            "error_code": "MEDIA_ERR_DECODE", "error_message": "decode failed", "error_fatal": true, "state": "errored"}))
        .at(13, "viewend", 22_000, json!({}))
        .done();
    Case {
        name: "readme_example",
        why: "the README's sequence with every counter filled in: it fails, so failure 100 % and no exit",
        beacons,
        checks: day(Overview {
            views: 1,
            unique_viewers: 1,
            watch_time_ms: 19_500,
            playing_time_ms: 15_750,
            ended_in_range: 1,
            playback_failure_pct: 100.0,
            startup_time_ms_p50: 850,
            startup_time_ms_p90: 850,
            startup_time_ms_p95: 850,
            rebuffer_pct: 100.0 * 2500.0 / 19_500.0,
            rebuffer_frequency_per_min: 1.0 / (19_500.0 / 60_000.0),
            rebuffer_duration_ms_per_view: 2500.0,
            avg_bitrate_kbps: 4373.0,
            ..ZERO
        }),
    }
}

fn exit_before_start() -> Case {
    let beacons = ViewWriter::new("exit", "u-1", HOUR)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 200, json!({"play_requested": true}))
        .at(3, "heartbeat", 10_200, json!({"watch_time_ms": 10_000}))
        .at(4, "viewend", 12_200, json!({"watch_time_ms": 12_000}))
        .done();
    Case {
        name: "exit_before_start",
        why: "play requested, no first frame, no error, then viewend: an exit; watch time counts the wait",
        beacons,
        checks: day(Overview {
            views: 1,
            unique_viewers: 1,
            watch_time_ms: 12_000,
            ended_in_range: 1,
            exits_before_start_pct: 100.0,
            ..ZERO
        }),
    }
}

fn failure_before_start() -> Case {
    let beacons = ViewWriter::new("fail-early", "u-1", HOUR)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 200, json!({"play_requested": true}))
        .at(
            3,
            "error",
            3200,
            json!({"watch_time_ms": 3000, "error_code": "NETWORK", "error_fatal": true}),
        )
        .at(4, "viewend", 3300, json!({}))
        .done();
    Case {
        name: "failure_before_start",
        why: "a fatal error before the first frame is a failure, and failures are not counted as exits",
        beacons,
        checks: day(Overview {
            views: 1,
            unique_viewers: 1,
            watch_time_ms: 3000,
            ended_in_range: 1,
            playback_failure_pct: 100.0,
            ..ZERO
        }),
    }
}

fn failure_mid_view() -> Case {
    let mut beacons = ViewWriter::new("fails", "u-1", HOUR)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 100, json!({"play_requested": true}))
        .at(3, "playing", 1100, json!({"startup_time_ms": 1000, "watch_time_ms": 1000, "bitrate_kbps": 3000}))
        .at(4, "heartbeat", 11_100, json!({"watch_time_ms": 11_000, "playing_time_ms": 10_000, "avg_bitrate_kbps": 3000}))
        .at(5, "error", 31_100, json!({"watch_time_ms": 31_000, "playing_time_ms": 30_000, "error_code": "DECODE", "error_fatal": true}))
        .done();
    beacons.extend(
        ViewWriter::new("fine", "u-2", HOUR)
            .at(1, "viewstart", 0, json!({}))
            .at(2, "play", 100, json!({"play_requested": true}))
            .at(3, "playing", 2100, json!({"startup_time_ms": 2000, "watch_time_ms": 2000, "bitrate_kbps": 1000}))
            .at(4, "viewend", 62_100, json!({"watch_time_ms": 62_000, "playing_time_ms": 60_000, "avg_bitrate_kbps": 1000}))
            .done(),
    );
    Case {
        name: "failure_mid_view",
        why: "one of two views fails after playing (a fatal error ends it without viewend): 50 %; startups [1000, 2000] put index 1 at every quantile",
        beacons,
        checks: day(Overview {
            views: 2,
            unique_viewers: 2,
            watch_time_ms: 31_000 + 62_000,
            playing_time_ms: 30_000 + 60_000,
            ended_in_range: 2,
            playback_failure_pct: 50.0,
            startup_time_ms_p50: 2000,
            startup_time_ms_p90: 2000,
            startup_time_ms_p95: 2000,
            // Weighted by playing time: (3000·30 000 + 1000·60 000) / 90 000.
            avg_bitrate_kbps: 150_000_000.0 / 90_000.0,
            ..ZERO
        }),
    }
}

fn rebuffer_then_viewend() -> Case {
    let beacons = ViewWriter::new("stalls", "u-1", HOUR)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 100, json!({"play_requested": true}))
        .at(3, "playing", 600, json!({"startup_time_ms": 500, "watch_time_ms": 500, "bitrate_kbps": 2000}))
        .at(4, "rebufferstart", 10_600, json!({"watch_time_ms": 10_500, "playing_time_ms": 10_000, "avg_bitrate_kbps": 2000, "rebuffer_count": 1}))
        .at(5, "rebufferend", 13_600, json!({"watch_time_ms": 13_500, "rebuffer_duration_ms": 3000}))
        .at(6, "rebufferstart", 30_600, json!({"watch_time_ms": 30_500, "playing_time_ms": 27_000, "rebuffer_count": 2}))
        .at(7, "rebufferend", 31_600, json!({"watch_time_ms": 31_500, "rebuffer_duration_ms": 4000}))
        .at(8, "viewend", 60_100, json!({"watch_time_ms": 60_000, "playing_time_ms": 55_500}))
        .done();
    Case {
        name: "rebuffer_then_viewend",
        why: "two stalls, 4 s in all, over one minute watched: 6.67 %, 2 per minute, 4000 ms per view",
        beacons,
        checks: day(Overview {
            views: 1,
            unique_viewers: 1,
            watch_time_ms: 60_000,
            playing_time_ms: 55_500,
            ended_in_range: 1,
            startup_time_ms_p50: 500,
            startup_time_ms_p90: 500,
            startup_time_ms_p95: 500,
            rebuffer_pct: 100.0 * 4000.0 / 60_000.0,
            rebuffer_frequency_per_min: 2.0,
            rebuffer_duration_ms_per_view: 4000.0,
            avg_bitrate_kbps: 2000.0,
            ..ZERO
        }),
    }
}

fn pause_not_counted() -> Case {
    let beacons = ViewWriter::new("pauses", "u-1", HOUR)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 100, json!({"play_requested": true}))
        .at(3, "playing", 1100, json!({"startup_time_ms": 1000, "watch_time_ms": 1000, "bitrate_kbps": 3000}))
        .at(4, "pause", 11_100, json!({"watch_time_ms": 11_000, "playing_time_ms": 10_000, "avg_bitrate_kbps": 3000, "state": "paused"}))
        .at(5, "playing", 71_100, json!({"state": "playing"}))
        .at(6, "heartbeat", 81_100, json!({"watch_time_ms": 21_000, "playing_time_ms": 20_000}))
        .at(7, "viewend", 91_100, json!({"watch_time_ms": 31_000, "playing_time_ms": 30_000}))
        .done();
    Case {
        name: "pause_not_counted",
        why: "a minute paused adds nothing to watch time, and playing again after it is not a second startup",
        beacons,
        checks: day(Overview {
            views: 1,
            unique_viewers: 1,
            watch_time_ms: 31_000,
            playing_time_ms: 30_000,
            ended_in_range: 1,
            startup_time_ms_p50: 1000,
            startup_time_ms_p90: 1000,
            startup_time_ms_p95: 1000,
            avg_bitrate_kbps: 3000.0,
            ..ZERO
        }),
    }
}

fn seek() -> Case {
    let beacons = ViewWriter::new("seeks", "u-1", HOUR)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 100, json!({"play_requested": true}))
        .at(3, "playing", 900, json!({"startup_time_ms": 800, "watch_time_ms": 800, "bitrate_kbps": 6000}))
        .at(4, "seeking", 20_900, json!({"watch_time_ms": 20_800, "playing_time_ms": 20_000, "avg_bitrate_kbps": 6000, "state": "seeking"}))
        .at(5, "seeked", 22_400, json!({"watch_time_ms": 22_300, "playhead_ms": 600_000, "state": "playing"}))
        .at(6, "viewend", 32_400, json!({"watch_time_ms": 32_300, "playing_time_ms": 30_000}))
        .done();
    Case {
        name: "seek",
        why: "the 1.5 s waiting on a seek is watch time but neither playing time nor a rebuffer",
        beacons,
        checks: day(Overview {
            views: 1,
            unique_viewers: 1,
            watch_time_ms: 32_300,
            playing_time_ms: 30_000,
            ended_in_range: 1,
            startup_time_ms_p50: 800,
            startup_time_ms_p90: 800,
            startup_time_ms_p95: 800,
            avg_bitrate_kbps: 6000.0,
            ..ZERO
        }),
    }
}

fn abandoned_by_timeout() -> Case {
    let beacons = ViewWriter::new("waits", "u-1", HOUR)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 100, json!({"play_requested": true}))
        .at(3, "heartbeat", 10_100, json!({"watch_time_ms": 10_000}))
        .at(4, "heartbeat", 20_100, json!({"watch_time_ms": 20_000}))
        .done();
    let waiting = Overview {
        views: 1,
        unique_viewers: 1,
        watch_time_ms: 20_000,
        ended_in_range: 1,
        ..ZERO
    };
    Case {
        name: "abandoned_by_timeout",
        why: "still waiting for a first frame 10 min after its last beacon is not an exit yet; after the 1 h timeout it is",
        beacons,
        checks: vec![
            Check {
                range: (0, DAY),
                now: HOUR + 20 + 600,
                expect: waiting.clone(),
            },
            Check {
                range: (0, DAY),
                now: HOUR + 20 + HOUR,
                expect: Overview {
                    exits_before_start_pct: 100.0,
                    ..waiting
                },
            },
        ],
    }
}

fn duplicates_and_reordering() -> Case {
    let sent = ViewWriter::new("shuffled", "u-1", HOUR)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 100, json!({"play_requested": true}))
        .at(
            3,
            "playing",
            1600,
            json!({"startup_time_ms": 1500, "watch_time_ms": 1500, "bitrate_kbps": 2500}),
        )
        .at(
            4,
            "heartbeat",
            11_600,
            json!({"watch_time_ms": 11_500, "playing_time_ms": 10_000, "avg_bitrate_kbps": 2500}),
        )
        .at(
            5,
            "viewend",
            21_600,
            json!({"watch_time_ms": 21_500, "playing_time_ms": 20_000}),
        )
        .done();
    // Seq 3 first and twice, the viewend before the heartbeat, which comes twice.
    let beacons = [2, 0, 1, 2, 4, 3, 3]
        .iter()
        .map(|&i| sent[i].clone())
        .collect();
    Case {
        name: "duplicates_and_reordering",
        why: "the highest seq is the truth whatever the arrival order; repeats count once",
        beacons,
        checks: day(Overview {
            views: 1,
            unique_viewers: 1,
            watch_time_ms: 21_500,
            playing_time_ms: 20_000,
            ended_in_range: 1,
            startup_time_ms_p50: 1500,
            startup_time_ms_p90: 1500,
            startup_time_ms_p95: 1500,
            avg_bitrate_kbps: 2500.0,
            ..ZERO
        }),
    }
}

fn crossing_midnight() -> Case {
    let beacons = ViewWriter::new("midnight", "u-1", -60)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 100, json!({"play_requested": true}))
        .at(
            3,
            "playing",
            1100,
            json!({"startup_time_ms": 1000, "watch_time_ms": 1000, "bitrate_kbps": 3000}),
        )
        .at(
            4,
            "heartbeat",
            61_100,
            json!({"watch_time_ms": 61_000, "playing_time_ms": 60_000, "avg_bitrate_kbps": 3000}),
        )
        .at(
            5,
            "rebufferstart",
            70_100,
            json!({"watch_time_ms": 70_000, "playing_time_ms": 69_000, "rebuffer_count": 1}),
        )
        .at(
            6,
            "rebufferend",
            72_100,
            json!({"watch_time_ms": 72_000, "rebuffer_duration_ms": 2000}),
        )
        .at(
            7,
            "viewend",
            121_100,
            json!({"watch_time_ms": 121_000, "playing_time_ms": 118_000}),
        )
        .done();
    Case {
        name: "crossing_midnight",
        why: "started at 23:59, ended at 00:01: engagement counts on the first day (by start), QoE on the second (by end)",
        beacons,
        checks: vec![
            Check {
                range: (-DAY, 0),
                now: 0,
                expect: Overview {
                    views: 1,
                    unique_viewers: 1,
                    watch_time_ms: 121_000,
                    playing_time_ms: 118_000,
                    ..ZERO
                },
            },
            Check {
                range: (0, DAY),
                now: DAY,
                expect: Overview {
                    ended_in_range: 1,
                    startup_time_ms_p50: 1000,
                    startup_time_ms_p90: 1000,
                    startup_time_ms_p95: 1000,
                    rebuffer_pct: 100.0 * 2000.0 / 121_000.0,
                    rebuffer_frequency_per_min: 1.0 / (121_000.0 / 60_000.0),
                    rebuffer_duration_ms_per_view: 2000.0,
                    avg_bitrate_kbps: 3000.0,
                    ..ZERO
                },
            },
        ],
    }
}

fn live_view() -> Case {
    let beacons = ViewWriter::new("live", "u-1", HOUR)
        .with(json!({"stream_type": "live", "video_duration_ms": 0}))
        .at(1, "viewstart", 0, json!({}))
        .at(
            2,
            "play",
            5,
            json!({"autoplay": true, "play_requested": true}),
        )
        .at(
            3,
            "playing",
            1205,
            json!({"startup_time_ms": 1200, "watch_time_ms": 1200, "bitrate_kbps": 3500}),
        )
        .at(
            4,
            "heartbeat",
            151_205,
            json!({"watch_time_ms": 151_200, "playing_time_ms": 150_000, "avg_bitrate_kbps": 3500}),
        )
        .at(
            5,
            "heartbeat",
            301_205,
            json!({"watch_time_ms": 301_200, "playing_time_ms": 300_000}),
        )
        .done();
    Case {
        name: "live_view",
        why: "a live view follows the same definitions; closed without viewend, it ends by inactivity and is no exit, having started",
        beacons,
        checks: day(Overview {
            views: 1,
            unique_viewers: 1,
            watch_time_ms: 301_200,
            playing_time_ms: 300_000,
            ended_in_range: 1,
            startup_time_ms_p50: 1200,
            startup_time_ms_p90: 1200,
            startup_time_ms_p95: 1200,
            avg_bitrate_kbps: 3500.0,
            ..ZERO
        }),
    }
}

fn viewers_and_quantiles() -> Case {
    let mut beacons = ViewWriter::new("first", "u-1", HOUR)
        .at(1, "viewstart", 0, json!({}))
        .at(2, "play", 100, json!({"play_requested": true}))
        .at(
            3,
            "playing",
            500,
            json!({"startup_time_ms": 400, "watch_time_ms": 400, "bitrate_kbps": 1000}),
        )
        .at(
            4,
            "viewend",
            10_500,
            json!({"watch_time_ms": 10_400, "playing_time_ms": 10_000, "avg_bitrate_kbps": 1000}),
        )
        .done();
    beacons.extend(
        ViewWriter::new("second", "u-1", HOUR + 60)
            .at(1, "viewstart", 0, json!({}))
            .at(2, "play", 100, json!({"play_requested": true}))
            .at(3, "playing", 900, json!({"startup_time_ms": 800, "watch_time_ms": 800, "bitrate_kbps": 4000}))
            .at(4, "viewend", 30_900, json!({"watch_time_ms": 30_800, "playing_time_ms": 30_000, "avg_bitrate_kbps": 4000}))
            .done(),
    );
    beacons.extend(
        ViewWriter::new("third", "u-2", HOUR + 120)
            .at(1, "viewstart", 0, json!({}))
            .at(2, "play", 100, json!({"play_requested": true}))
            .at(
                3,
                "playing",
                1300,
                json!({"startup_time_ms": 1200, "watch_time_ms": 1200, "bitrate_kbps": 2000}),
            )
            .at(4, "viewend", 1300, json!({}))
            .done(),
    );
    Case {
        name: "viewers_and_quantiles",
        why: "three views of two viewers; startups [400, 800, 1200]: p50 is index 1, p90 and p95 index 2; a view that never played weighs nothing in the bitrate",
        beacons,
        checks: day(Overview {
            views: 3,
            unique_viewers: 2,
            watch_time_ms: 10_400 + 30_800 + 1200,
            playing_time_ms: 40_000,
            ended_in_range: 3,
            startup_time_ms_p50: 800,
            startup_time_ms_p90: 1200,
            startup_time_ms_p95: 1200,
            // (1000·10 000 + 4000·30 000) / 40 000
            avg_bitrate_kbps: 3250.0,
            ..ZERO
        }),
    }
}
