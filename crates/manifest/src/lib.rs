//! spinlift-manifest
