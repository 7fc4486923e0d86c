//! Sharding one controller's keys across replicas: a consistent-hash ring over the
//! members' Leases, and a move protocol under which no key is reconciled by two
//! replicas at once.
//!
//! # The ring
//! Every replica renews its own Lease `<ring>-<identity>` (label `kcache.io/ring=<ring>`)
//! and lists the ring's Leases in the same tick; the members are the Leases that are
//! live. Members are placed on the 64-bit FNV-1a hash space as [`DEFAULT_VNODES`]
//! virtual nodes each ([`Ring`]); an object is placed by the FNV-1a hash of its
//! namespace or (its controller owner's) uid ([`ShardBy`]), the hash Kubernetes'
//! server-side shard selector uses, so a member's share is a list of [`HashRange`]s
//! exportable as a selector ([`shard_selector`]). A membership change moves about
//! `1/N` of the space, only to a joining member or only from a leaving one.
//!
//! Members delete the Leases of the ring that stayed unchanged for
//! [`DEFAULT_LEASE_GC_AFTER`] lease durations (a crashed replica's), with a
//! resourceVersion precondition so a renewed Lease is never deleted.
//!
//! # Caching only the shard
//! [`ShardedInformer`] lists and watches only this replica's ranges with the
//! server-side shard selector when the server supports it; when the membership moves
//! its ranges it lists only the gained ranges (at the watch's last resourceVersion),
//! drops the lost ones locally and watches on, falling back to relisting its whole
//! new slice; without support it caches everything.
//! [`ranges`] computes what a change gained and lost. Without support, a caller that
//! opts in ([`CacheModePreference::LabelWhenUnsupported`]) caches by label instead: a
//! leader-elected [`Sharder`] labels every object `shard.kcache.io/<ring>=<owner>`
//! ([`ShardLabel`]) and each replica watches its own label ([`CacheMode::Label`]).
//!
//! # The move protocol
//! The decision is [`Assignment`], a pure state machine fed with observations:
//! 1. **Liveness.** A member is live while its lease record keeps changing within its
//!    own `leaseDurationSeconds`, measured on the local monotonic clock from when this
//!    replica first saw each version (client-go's observedTime rule,
//!    k8s.io/client-go/tools/leaderelection/leaderelection.go). Timestamps written by
//!    other processes are never compared with the local clock, so clocks that
//!    disagree by seconds change nothing. A released lease (empty holder) is not live.
//! 2. **Freshness.** A replica reconciles nothing unless its last successful renew and
//!    its last applied list were both *sent* less than `renew_deadline` ago (and its
//!    own lease is live, and it is not leaving). A replica that is paused, or cut off
//!    from the API server, stops on its own; every replica that reconciles uses a
//!    membership at most `renew_deadline` old.
//! 3. **Assignment.** A replica reconciles the hashes the ring of its live set gives
//!    it, except a hash it *gained* at a membership transition whose previous owner is
//!    still live: that one waits [`Timing::hold`] (`renew_deadline` + one retry period)
//!    from when this replica first observed the transition. A hash gained from a
//!    member that expired or released its lease moves at once. Regaining freshness (the
//!    first view, or after a pause or an outage) counts as a transition from the ring
//!    without this replica: every hash another live member would own without it waits.
//! 4. **Losing.** A replica stops starting a hash it lost at once and aborts its
//!    in-flight reconciles ([`Controller::shard`](crate::controller::Controller::shard)).
//! 5. **Leaving.** A replica that leaves stops admitting and waits for its in-flight
//!    reconciles to end, then releases its lease; the others take its hashes at once.
//!
//! # Why two replicas never reconcile one key at once
//! *Lemma* (consistent hashing): for member sets `S ⊆ T`, a hash whose owner under `T`
//! is in `S` has the same owner under `S`. So if replicas X and Y both reconcile hash
//! `h`, their views cannot both contain both of them: under `V_X ∩ V_Y ⊇ {X, Y}` the
//! owner would be both X and Y. One of them, say Y, is missing from the other's view
//! `V_X` while Y reconciles; Y is missing because
//! * *X judged Y's lease expired or released.* Y's last successful renew was sent at
//!   `s` before the server stored it, X saw that version at `o ≥ s`, and X expires it
//!   at `o + lease_duration`. Y stopped reconciling at `s + renew_deadline`, which is
//!   earlier by `lease_duration − renew_deadline` (the allowance for clock rates). A
//!   released lease is written only after Y stopped. If Y renews again later, Y was
//!   stale in between, and its regained freshness is a transition (3) that holds `h`.
//! * *X has not seen Y's lease yet (Y joined, or came back).* Y holds `h` for
//!   `renew_deadline` + margin from when it observed its own (re)join, which is after
//!   the server stored Y's renewed lease. By then X's view comes from a list sent
//!   after that store (freshness), so it contains Y: X has dropped `h` or stopped.
//!
//! The same holds views apart that differ only in which dead members they have
//! expired yet: the member missing from one view is dead or stopped.
//! Every hash has an owner in every non-empty view (the ring covers the space), so
//! no key is left without an owner once holds end.
//!
//! Aborting a reconcile drops its future at its next `.await`: a request already
//! handed to the socket before a replica was paused can still reach the server after
//! its lease expired. Lease-based exclusion without server-side fencing tokens is only
//! as strong as that (as for client-go's leader election); reconciles that write with
//! `resourceVersion` preconditions stay safe regardless.
//!
//! # Guarantees
//! See [`Assignment`] and [`Ring`]: the decisions are pure functions of observations
//! and the local clock.

mod assignment;
mod cache;
mod gc;
mod key;
mod label_cache;
mod labeler;
mod membership;
pub mod ranges;
mod ring;
mod sharder;

pub use assignment::{Assignment, Decision, MemberLease, Timing, TimingError};
pub use cache::{CacheMode, ShardCacheError, ShardedInformer};
pub use key::{ShardBy, fnv1a64};
pub use label_cache::CacheModePreference;
pub use labeler::{LabelError, PatchPacer, Relabel, SHARD_LABEL_PREFIX, ShardLabel};
pub use membership::{DEFAULT_LEASE_GC_AFTER, MembershipConfig, MembershipError, RING_LABEL, Reconciling, ShardMembership};
pub use ring::{DEFAULT_VNODES, HashRange, Ring, shard_selector};
pub use sharder::{Sharder, SharderConfig, SharderError, SharderMetrics};
