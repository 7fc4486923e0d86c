//! What a controller reports ([`Event`], [`EventType`]) and who reports it ([`Reporter`]).

use k8s_openapi::api::core::v1::ObjectReference;

/// The severity of an Event (its `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something happened as it should.
    Normal,
    /// Something may need attention.
    Warning,
}

impl EventType {
    /// `Normal` or `Warning`, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One thing to report about an object.
///
/// ```
/// use kcache::controller::events::{Event, EventType, Reporter};
/// let e = Event::warning("BackOff", "Reconcile").note("image pull failed");
/// assert_eq!((e.type_.as_str(), e.note.as_deref()), ("Warning", Some("image pull failed")));
/// assert_eq!(e.type_, EventType::Warning);
/// let r = Reporter { controller: "example.com/ctl".into(), instance: Some("ctl-0".into()) };
/// assert_eq!(r.instance(), "ctl-0");
/// assert!(Reporter::new("example.com/ctl").instance().starts_with("example.com/ctl"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub type_: EventType,
    /// Why the action was taken, in `UpperCamelCase` (at most 128 bytes; longer is cut).
    pub reason: String,
    /// What was done or failed, e.g. `Reconcile` (at most 128 bytes; longer is cut).
    pub action: String,
    /// A human-readable description (at most 1024 bytes; longer is cut).
    pub note: Option<String>,
    /// A second object the event concerns (`related`).
    pub related: Option<ObjectReference>,
}

impl Event {
    /// A `Normal` event.
    pub fn normal(reason: &str, action: &str) -> Self {
        Event { type_: EventType::Normal, reason: reason.to_owned(), action: action.to_owned(), note: None, related: None }
    }

    /// A `Warning` event.
    pub fn warning(reason: &str, action: &str) -> Self {
        Event { type_: EventType::Warning, ..Event::normal(reason, action) }
    }

    /// With a note.
    #[must_use]
    pub fn note(mut self, note: &str) -> Self {
        self.note = Some(note.to_owned());
        self
    }

    /// With a related object.
    #[must_use]
    pub fn related(mut self, related: ObjectReference) -> Self {
        self.related = Some(related);
        self
    }
}

/// Who reports: `reportingController` and `reportingInstance`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reporter {
    /// The controller's name, a qualified name such as `example.com/my-controller`.
    pub controller: String,
    /// This replica, e.g. the pod's name. `None`: `<controller>-<hostname>`,
    /// as client-go's `NewRecorder`.
    pub instance: Option<String>,
}

impl Reporter {
    /// A reporter named `controller`, its instance from the host name.
    pub fn new(controller: &str) -> Self {
        Reporter { controller: controller.to_owned(), instance: None }
    }

    /// The `reportingInstance` written (at most 128 bytes, the server's limit).
    pub fn instance(&self) -> String {
        let mut s = match &self.instance {
            Some(i) => i.clone(),
            None => match hostname() {
                Some(h) => format!("{}-{h}", self.controller),
                None => self.controller.clone(),
            },
        };
        if s.len() > 128 {
            let mut end = 128;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
