//! The contract between the `modelgate` host and a provider plugin loaded at
//! run time from a shared library.
//!
//! A plugin author implements an ordinary
//! [`ProviderAdapter`](gateway_core::ProviderAdapter) and exports it with
//! [`export_plugin!`]; everything below is what that macro and the host use.
//!
//! What crosses the boundary is deliberately narrow, because Rust's own ABI
//! is not stable between builds:
//! - one `#[repr(C)]` [`PluginDescriptor`] of plain data and `extern "C"` fn
//!   pointers, found through the symbol [`ENTRY_SYMBOL`], starting with its
//!   ABI version and its own size so the host can refuse what it does not
//!   understand;
//! - JSON bytes for backend configs, canonical requests, events and errors;
//! - streaming by callback: the plugin calls the host's callback once per
//!   event and exactly once with [`CALLBACK_END`];
//! - whoever allocates frees: event bytes are only borrowed for the length
//!   of a callback; error buffers the plugin allocates are released with its
//!   own `free_buffer`;
//! - the plugin owns its tokio runtime (the host's does not cross `dlopen`),
//!   and every export catches panics, so a panicking plugin yields an error,
//!   never an abort;
//! - the host never unloads a plugin.
//!
//! See `docs/plugins.md` for the guide.

#![allow(unsafe_code)]

pub mod plugin;
pub mod wire;

use std::ffi::{c_char, c_void};

/// The version of this ABI. The host refuses a plugin built against another.
pub const ABI_VERSION: u32 = 1;

/// The version of this crate, NUL-terminated, as plugins report it.
pub const SDK_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The symbol every plugin exports: `extern "C" fn() -> *const PluginDescriptor`.
pub const ENTRY_SYMBOL: &str = "modelgate_plugin_v1";

/// Callback kind: `data` is one canonical `ChatEvent` as JSON.
pub const CALLBACK_EVENT: u32 = 1;
/// Callback kind: `data` is a [`wire::WireError`] as JSON; `END` follows.
pub const CALLBACK_ERROR: u32 = 2;
/// Callback kind: the call is over; no further callbacks for it. Sent exactly
/// once per call, also after `cancel`.
pub const CALLBACK_END: u32 = 3;

/// A byte buffer allocated by the plugin and released by its `free_buffer`.
#[repr(C)]
#[derive(Debug)]
pub struct RawBuffer {
    /// Start of the bytes (null when empty).
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Allocated capacity, for `free_buffer`.
    pub cap: usize,
}

impl RawBuffer {
    /// An empty buffer.
    pub const fn empty() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }
}

/// How a plugin streams events back: `ctx` is the host's, `data` is valid
/// only during the call.
pub type Callback = unsafe extern "C" fn(ctx: *mut c_void, kind: u32, data: *const u8, len: usize);

/// Builds an adapter for one backend. `config` is a
/// [`wire::BackendConfig`] as JSON. Returns a handle, or null with an error
/// message written to `error`.
pub type CreateFn = unsafe extern "C" fn(
    dialect: *const c_char,
    config: *const u8,
    config_len: usize,
    error: *mut RawBuffer,
) -> *mut c_void;

/// Starts a (streamed) chat on an adapter: `request` is a canonical
/// `ChatRequest` as JSON. Events arrive through `callback(ctx, ..)`, ending
/// with exactly one `CALLBACK_END`. Returns the call's id for `cancel`.
pub type ChatFn = unsafe extern "C" fn(
    adapter: *mut c_void,
    request: *const u8,
    request_len: usize,
    callback: Callback,
    ctx: *mut c_void,
) -> u64;

/// Cancels a call (the client went away); its `CALLBACK_END` still comes.
pub type CancelFn = unsafe extern "C" fn(adapter: *mut c_void, call: u64);

/// Releases a buffer the plugin allocated.
pub type FreeBufferFn = unsafe extern "C" fn(buffer: RawBuffer);

/// Releases an adapter handle.
pub type DestroyFn = unsafe extern "C" fn(adapter: *mut c_void);

/// Called once when the host shuts down.
pub type ShutdownFn = unsafe extern "C" fn();

/// What a plugin exports. Fields are only ever appended; `struct_size`
/// tells the host how many it may read.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// [`ABI_VERSION`] of the crate the plugin was built with.
    pub abi_version: u32,
    /// `size_of::<PluginDescriptor>()` in the plugin's build.
    pub struct_size: u32,
    /// [`SDK_VERSION`] of the crate the plugin was built with.
    pub sdk_version: *const c_char,
    /// The plugin's name, NUL-terminated.
    pub plugin_name: *const c_char,
    /// The plugin's version, NUL-terminated.
    pub plugin_version: *const c_char,
    /// The dialect names the plugin provides, each NUL-terminated.
    pub dialects: *const *const c_char,
    /// How many `dialects` there are.
    pub dialect_count: usize,
    /// See [`CreateFn`].
    pub create: CreateFn,
    /// See [`ChatFn`].
    pub chat: ChatFn,
    /// See [`CancelFn`].
    pub cancel: CancelFn,
    /// See [`FreeBufferFn`].
    pub free_buffer: FreeBufferFn,
    /// See [`DestroyFn`].
    pub destroy: DestroyFn,
    /// See [`ShutdownFn`].
    pub shutdown: ShutdownFn,
}

// SAFETY: the descriptor is immutable static data: pointers to static
// NUL-terminated strings and fn pointers, all valid for the life of the
// (never unloaded) library.
unsafe impl Sync for PluginDescriptor {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for PluginDescriptor {}

/// A pointer to a static C string that may live in a `static`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy)]
pub struct StaticCStr(pub *const c_char);

// SAFETY: points at immutable static data.
unsafe impl Sync for StaticCStr {}

/// Exports a plugin from an ordinary adapter factory:
///
/// ```ignore
/// modelgate_plugin::export_plugin! {
///     name: "my-provider",
///     version: env!("CARGO_PKG_VERSION"),
///     dialects: ["my-provider"],
///     build: my_crate::build,   // fn(&str, &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError>
/// }
/// ```
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, version: $version:expr, dialects: [$($dialect:expr),+ $(,)?], build: $build:path $(,)?) => {
        /// The plugin's entry point, found by the host with `dlsym`.
        ///
        /// # Safety
        /// Called by the modelgate host only.
        #[unsafe(no_mangle)]
        pub extern "C" fn modelgate_plugin_v1() -> *const $crate::PluginDescriptor {
            static DIALECTS: &[$crate::StaticCStr] = &[
                $($crate::StaticCStr(concat!($dialect, "\0").as_ptr().cast())),+
            ];
            static NAME: &str = concat!($name, "\0");
            static VERSION: &str = concat!($version, "\0");
            $crate::plugin::describe(
                NAME,
                VERSION,
                DIALECTS,
                $build,
            )
        }
    };
}
