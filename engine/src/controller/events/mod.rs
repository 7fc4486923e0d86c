//! Kubernetes Events (`events.k8s.io/v1`) from a controller: a non-blocking
//! [`Recorder`] with client-go's aggregation into series and its per-object
//! spam filter (client-go tools/events and tools/record).
//!
//! # Guarantees
//! * [`Recorder::publish`] never waits: it puts the event on a bounded queue
//!   that a background task drains; when the queue is full the event is
//!   dropped and counted ([`RecorderStats::dropped_full`]).
//! * Occurrences that differ only in their note are one Event: the first is
//!   created, the second sets `series.count` to 2, later ones raise the count,
//!   which is written at most once per [`RecorderConfig::series_flush`] and on
//!   [`Recorder::flush`].
//! * Each object gets a burst of 25 events and one more every 5 minutes
//!   (client-go's `EventSourceObjectSpamFilter`); the rest are dropped and
//!   counted ([`RecorderStats::dropped_spam`]).

mod aggregate;
mod event;
mod recorder;

pub use event::{Event, EventType, Reporter};
pub use recorder::{Recorder, RecorderConfig, RecorderStats};
