//! The plugin side of the ABI: what [`export_plugin!`](crate::export_plugin)
//! wires an adapter factory into. Plugin authors do not call this directly.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use futures::{FutureExt, StreamExt};
use gateway_core::registry::{BackendContext, BuildError};
use gateway_core::secret::Secret;
use gateway_core::{ChatRequest, GatewayError, ProviderAdapter};

use crate::wire::{BackendConfig, WireError};
use crate::{
    ABI_VERSION, CALLBACK_END, CALLBACK_ERROR, CALLBACK_EVENT, Callback, PluginDescriptor,
    RawBuffer, SDK_VERSION, StaticCStr,
};

/// A plugin's adapter factory: the dialect asked for, and the backend.
pub type PluginBuildFn = fn(&str, &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError>;

static BUILD: OnceLock<PluginBuildFn> = OnceLock::new();
static DESCRIPTOR: OnceLock<PluginDescriptor> = OnceLock::new();

/// The plugin's own runtime: tokio's context does not cross `dlopen`, so
/// the plugin's async work runs here, never on the host's runtime.
fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("modelgate-plugin")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
}

/// Builds (once) the descriptor that `modelgate_plugin_v1` returns.
pub fn describe(
    name: &'static str,
    version: &'static str,
    dialects: &'static [StaticCStr],
    build: PluginBuildFn,
) -> *const PluginDescriptor {
    let _ = BUILD.set(build);
    DESCRIPTOR.get_or_init(|| PluginDescriptor {
        abi_version: ABI_VERSION,
        struct_size: size_of::<PluginDescriptor>() as u32,
        sdk_version: SDK_VERSION.as_ptr().cast(),
        plugin_name: name.as_ptr().cast(),
        plugin_version: version.as_ptr().cast(),
        dialects: dialects.as_ptr().cast(),
        dialect_count: dialects.len(),
        create,
        chat,
        cancel,
        free_buffer,
        destroy,
        shutdown,
    })
}

/// One adapter handed to the host, with its running calls.
struct Handle {
    adapter: Arc<dyn ProviderAdapter>,
    calls: Arc<Mutex<HashMap<u64, tokio::task::AbortHandle>>>,
    next_call: AtomicU64,
}

fn into_buffer(text: String) -> RawBuffer {
    let mut bytes = std::mem::ManuallyDrop::new(text.into_bytes());
    RawBuffer {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
        cap: bytes.capacity(),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

unsafe extern "C" fn create(
    dialect: *const c_char,
    config: *const u8,
    config_len: usize,
    error: *mut RawBuffer,
) -> *mut c_void {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<*mut c_void, String> {
        // SAFETY: the host passes a NUL-terminated dialect name it owns for
        // the duration of the call.
        let dialect = unsafe { CStr::from_ptr(dialect) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: the host passes `config_len` readable bytes.
        let config = unsafe { std::slice::from_raw_parts(config, config_len) };
        let config: BackendConfig =
            serde_json::from_slice(config).map_err(|err| format!("bad backend config: {err}"))?;
        let endpoint = match config.endpoint.as_deref() {
            Some(text) => {
                Some(url::Url::parse(text).map_err(|err| format!("bad endpoint: {err}"))?)
            }
            None => None,
        };
        let context = BackendContext {
            id: config.id,
            endpoint,
            credential: config.credential.map(Secret::new),
            options: config.options,
            connect_timeout: None,
        };
        let build = BUILD.get().ok_or("the plugin registered no factory")?;
        runtime().ok_or("the plugin could not start its runtime")?;
        let adapter = build(&dialect, &context).map_err(|err| match err.field {
            Some(field) => format!("{field}: {}", err.message),
            None => err.message,
        })?;
        let handle = Box::new(Handle {
            adapter,
            calls: Arc::new(Mutex::new(HashMap::new())),
            next_call: AtomicU64::new(1),
        });
        Ok(Box::into_raw(handle).cast())
    }));
    let message = match result {
        Ok(Ok(handle)) => return handle,
        Ok(Err(message)) => message,
        Err(panic) => format!("the plugin panicked: {}", panic_message(&*panic)),
    };
    if !error.is_null() {
        // SAFETY: the host passes a writable RawBuffer.
        unsafe { error.write(into_buffer(message)) };
    }
    std::ptr::null_mut()
}

/// A context pointer the host guarantees is usable from any thread until
/// the `END` callback.
#[derive(Clone, Copy)]
struct HostContext {
    callback: Callback,
    ctx: *mut c_void,
}

// SAFETY: the host's contract: ctx may be used from any thread until END,
// and the host's callback only moves data into a thread-safe channel.
unsafe impl Send for HostContext {}
// SAFETY: as above; `send` takes `&self` and touches nothing unsynchronised.
unsafe impl Sync for HostContext {}

impl HostContext {
    fn send(&self, kind: u32, data: &[u8]) {
        // SAFETY: the callback and ctx come from the host, which keeps ctx
        // alive until END; `data` lives for the duration of the call.
        unsafe { (self.callback)(self.ctx, kind, data.as_ptr(), data.len()) };
    }

    fn error(&self, err: &GatewayError) {
        let body = serde_json::to_vec(&WireError::from(err)).unwrap_or_default();
        self.send(CALLBACK_ERROR, &body);
    }
}

/// Sends `END` when the call's task finishes, is aborted or panics, and
/// forgets the call.
struct EndGuard {
    host: HostContext,
    calls: Arc<Mutex<HashMap<u64, tokio::task::AbortHandle>>>,
    call: u64,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.call);
        self.host.send(CALLBACK_END, &[]);
    }
}

unsafe extern "C" fn chat(
    adapter: *mut c_void,
    request: *const u8,
    request_len: usize,
    callback: Callback,
    ctx: *mut c_void,
) -> u64 {
    let host = HostContext { callback, ctx };
    let started = catch_unwind(AssertUnwindSafe(|| -> Result<u64, GatewayError> {
        // SAFETY: `adapter` is a handle `create` returned and the host has
        // not destroyed.
        let handle = unsafe { &*(adapter as *const Handle) };
        // SAFETY: the host passes `request_len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(request, request_len) };
        let request: ChatRequest = serde_json::from_slice(bytes)
            .map_err(|err| GatewayError::internal(format!("bad request from the host: {err}")))?;
        let runtime = runtime().ok_or_else(|| GatewayError::internal("no plugin runtime"))?;
        let call = handle.next_call.fetch_add(1, Ordering::Relaxed);
        let adapter = handle.adapter.clone();
        let calls = handle.calls.clone();
        // Hold the lock across spawn so a fast task cannot remove its entry
        // before it is inserted.
        let mut running = handle.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let task = runtime.spawn(async move {
            let _end = EndGuard { host, calls, call };
            let work = async {
                let mut stream = adapter.chat_stream(request).await?;
                while let Some(event) = stream.next().await {
                    let event = event?;
                    let body = serde_json::to_vec(&event).map_err(|err| {
                        GatewayError::internal(format!("cannot encode an event: {err}"))
                    })?;
                    host.send(CALLBACK_EVENT, &body);
                }
                Ok::<(), GatewayError>(())
            };
            match AssertUnwindSafe(work).catch_unwind().await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => host.error(&err),
                Err(panic) => host.error(&GatewayError::internal(format!(
                    "the plugin panicked: {}",
                    panic_message(&*panic)
                ))),
            }
        });
        running.insert(call, task.abort_handle());
        Ok(call)
    }));
    match started {
        Ok(Ok(call)) => call,
        Ok(Err(err)) => {
            host.error(&err);
            host.send(CALLBACK_END, &[]);
            0
        }
        Err(panic) => {
            host.error(&GatewayError::internal(format!(
                "the plugin panicked: {}",
                panic_message(&*panic)
            )));
            host.send(CALLBACK_END, &[]);
            0
        }
    }
}

unsafe extern "C" fn cancel(adapter: *mut c_void, call: u64) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as in `chat`.
        let handle = unsafe { &*(adapter as *const Handle) };
        let task = handle
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&call)
            .cloned();
        if let Some(task) = task {
            task.abort();
        }
    }));
}

unsafe extern "C" fn free_buffer(buffer: RawBuffer) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !buffer.ptr.is_null() {
            // SAFETY: the buffer came from `into_buffer` in this library.
            drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap) });
        }
    }));
}

unsafe extern "C" fn destroy(adapter: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !adapter.is_null() {
            // SAFETY: a handle from `create`, destroyed once by the host.
            drop(unsafe { Box::from_raw(adapter.cast::<Handle>()) });
        }
    }));
}

unsafe extern "C" fn shutdown() {}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use gateway_core::{ChatResponse, ChatStream};

    /// An adapter whose streams panic, to prove the boundary holds.
    struct Panicking;

    #[async_trait]
    impl ProviderAdapter for Panicking {
        fn dialect(&self) -> &str {
            "panicking"
        }
        async fn chat_once(&self, _: ChatRequest) -> Result<ChatResponse, GatewayError> {
            unreachable!("not called")
        }
        async fn chat_stream(&self, _: ChatRequest) -> Result<ChatStream, GatewayError> {
            panic!("adapter bug")
        }
    }

    fn panicking(_: &str, _: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
        Ok(Arc::new(Panicking))
    }

    type Seen = std::sync::mpsc::Sender<(u32, String)>;

    unsafe extern "C" fn record(ctx: *mut c_void, kind: u32, data: *const u8, len: usize) {
        // SAFETY: the test passes a live Sender and the plugin valid bytes.
        let sender = unsafe { &*(ctx as *const Seen) };
        let text =
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(data, len) }).into_owned();
        let _ = sender.send((kind, text));
    }

    #[test]
    fn a_panicking_adapter_becomes_an_error_then_end() {
        static DIALECTS: &[StaticCStr] = &[StaticCStr(c"panicking".as_ptr())];
        let descriptor = describe("t\0", "1\0", DIALECTS, panicking);
        // SAFETY: the descriptor this module just built.
        let descriptor = unsafe { &*descriptor };
        let config = br#"{"id": "b", "options": {}}"#;
        let mut error = RawBuffer::empty();
        // SAFETY: arguments per the ABI.
        let handle = unsafe {
            (descriptor.create)(
                c"panicking".as_ptr(),
                config.as_ptr(),
                config.len(),
                &mut error,
            )
        };
        assert!(!handle.is_null());
        let (sender, seen) = std::sync::mpsc::channel::<(u32, String)>();
        let request = serde_json::to_vec(&ChatRequest::default()).expect("json");
        let ctx = std::ptr::addr_of!(sender) as *mut c_void;
        // SAFETY: `sender` outlives the call: we wait for END below.
        unsafe { (descriptor.chat)(handle, request.as_ptr(), request.len(), record, ctx) };
        let first = seen
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("an error");
        assert_eq!(first.0, CALLBACK_ERROR);
        assert!(
            first.1.contains("the plugin panicked: adapter bug"),
            "{}",
            first.1
        );
        let end = seen
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("end");
        assert_eq!(end.0, CALLBACK_END);
        // SAFETY: a handle from `create`, destroyed once.
        unsafe { (descriptor.destroy)(handle) };
    }
}
