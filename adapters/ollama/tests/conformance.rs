//! The shared adapter conformance cases (docs/specs/adapter.md).

// Naming the crate links its `inventory` registration into this test binary.
use adapter_ollama as _;

mock_upstream::adapter_conformance!("ollama", "");
