//! Watcher, reflector and shared informers: keeping a store in sync with the API server.
