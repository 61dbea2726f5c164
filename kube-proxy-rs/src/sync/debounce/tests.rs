//! Tables: (milliseconds since t0, event, the actions expected, written compactly).

use std::time::{Duration, Instant};

use super::*;

const OK_FULL: Event = Event::Synced {
    full: true,
    ok: true,
};
const OK: Event = Event::Synced {
    full: false,
    ok: true,
};
const FAILED_FULL: Event = Event::Synced {
    full: true,
    ok: false,
};

fn timing() -> Timing {
    Timing::new(Duration::from_secs(1), Duration::from_secs(30))
}

fn show(t0: Instant, a: &Action) -> String {
    match a {
        Action::Sync {
            full: Some(r),
            trigger,
        } => format!("full({}) by {}", r.as_str(), trigger.as_str()),
        Action::Sync {
            full: None,
            trigger,
        } => format!("partial by {}", trigger.as_str()),
        Action::CheckCanaries => "canaries".into(),
        Action::WakeAt(t) => format!("wake {}", t.duration_since(t0).as_millis()),
    }
}

/// Runs the rows in order and checks each row's actions.
fn table(timing: Timing, rows: &[(u64, Event, &[&str])]) {
    let t0 = Instant::now();
    let mut d = Debouncer::new(timing);
    for (i, (ms, ev, want)) in rows.iter().enumerate() {
        let got: Vec<String> = d
            .handle(t0 + Duration::from_millis(*ms), *ev)
            .iter()
            .map(|a| show(t0, a))
            .collect();
        assert_eq!(got, *want, "row {i}: t={ms}ms {ev:?}");
    }
}

#[test]
fn nothing_happens_before_start_then_a_full_sync() {
    table(
        timing(),
        &[
            (0, Event::Changed, &[]),
            (5, Event::Timer, &[]),
            (10, Event::Start, &["full(start) by start"]),
            (60, OK_FULL, &["wake 30060"]),
        ],
    );
}

#[test]
fn burst_of_two_then_one_per_min_sync_period() {
    table(
        timing(),
        &[
            (0, Event::Start, &["full(start) by start"]),
            (50, OK_FULL, &["wake 30050"]),
            // second token of the burst
            (100, Event::Changed, &["partial by changes"]),
            (120, OK, &["wake 30050"]),
            // no token left: wait for the next one (tokens at 1000, 2000, ...)
            (200, Event::Changed, &["wake 1000"]),
            (300, Event::Changed, &["wake 1000"]),
            (1000, Event::Timer, &["partial by changes"]),
            (1010, OK, &["wake 30050"]),
            (1500, Event::Changed, &["wake 2000"]),
            (2000, Event::Timer, &["partial by changes"]),
            (2010, OK, &["wake 30050"]),
            // a quiet period refills the bucket: two at once again
            (9000, Event::Changed, &["partial by changes"]),
            (9010, OK, &["wake 30050"]),
            (9020, Event::Changed, &["partial by changes"]),
            (9030, OK, &["wake 30050"]),
            (9040, Event::Changed, &["wake 10000"]),
        ],
    );
}

#[test]
fn changes_during_a_sync_are_folded_into_the_next_one() {
    table(
        timing(),
        &[
            (0, Event::Start, &["full(start) by start"]),
            (10, Event::Changed, &[]),
            (20, Event::NodeChanged, &[]),
            (30, Event::Changed, &[]),
            // the first trigger is kept; the node change makes it full
            (40, OK_FULL, &["full(node changed) by changes"]),
            (50, OK_FULL, &["wake 30040"]),
        ],
    );
}

#[test]
fn failures_are_retried_as_full_syncs_with_backoff_up_to_sync_period() {
    table(
        Timing {
            sync_period: Duration::from_secs(5),
            ..timing()
        },
        &[
            (0, Event::Start, &["full(start) by start"]),
            (10, FAILED_FULL, &["wake 1010"]),
            (1010, Event::Timer, &["full(previous sync failed) by retry"]),
            (1020, FAILED_FULL, &["wake 3020"]),
            (3020, Event::Timer, &["full(previous sync failed) by retry"]),
            (3030, FAILED_FULL, &["wake 7030"]),
            (7030, Event::Timer, &["full(previous sync failed) by retry"]),
            (7040, FAILED_FULL, &["wake 12040"]), // capped at sync_period
            // a change before the retry syncs at once, and full
            (
                8000,
                Event::Changed,
                &["full(previous sync failed) by changes"],
            ),
            (8010, OK_FULL, &["wake 13010"]),
            // success resets the backoff
            (8500, Event::Changed, &["partial by changes"]),
            (8510, FAILED_FULL, &["wake 9510"]),
        ],
    );
}

#[test]
fn periodic_sync_and_canary_check_every_sync_period() {
    table(
        timing(),
        &[
            (0, Event::Start, &["full(start) by start"]),
            (100, OK_FULL, &["wake 30100"]),
            (30100, Event::Timer, &["canaries", "partial by periodic"]),
            (30200, OK, &["wake 60100"]),
            (60100, Event::Timer, &["canaries", "wake 60200"]),
            (60200, Event::Timer, &["partial by periodic"]),
            (60250, Event::CanaryGone, &[]),
            (60300, OK, &["full(canary chain gone) by canary gone"]),
            (60400, OK_FULL, &["wake 90100"]),
        ],
    );
}

#[test]
fn a_full_sync_every_full_sync_period() {
    let t = Timing {
        sync_period: Duration::from_secs(1800),
        ..timing()
    };
    table(
        t,
        &[
            (0, Event::Start, &["full(start) by start"]),
            (10, OK_FULL, &["wake 1800010"]),
            (
                1_800_010,
                Event::Timer,
                &["canaries", "partial by periodic"],
            ),
            (1_800_020, OK, &["wake 3600010"]),
            (
                3_600_010,
                Event::Timer,
                &["canaries", "full(hourly full sync) by periodic"],
            ),
            (3_600_020, OK_FULL, &["wake 5400010"]),
        ],
    );
}

#[test]
fn zero_min_sync_period_syncs_every_change_one_at_a_time() {
    table(
        Timing::new(Duration::ZERO, Duration::from_secs(30)),
        &[
            (0, Event::Start, &["full(start) by start"]),
            (1, OK_FULL, &["wake 30001"]),
            (2, Event::Changed, &["partial by changes"]),
            (3, Event::Changed, &[]),
            (4, OK, &["partial by changes"]),
            (5, OK, &["wake 30001"]),
            (6, Event::Changed, &["partial by changes"]),
        ],
    );
}
