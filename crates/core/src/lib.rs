//! spinlift-core
