//! Loading run-time provider plugins and adapting them to
//! [`ProviderAdapter`].
//!
//! What must match between host and plugin, and is checked at load: the
//! entry symbol `modelgate_plugin_v1`, the ABI version, a descriptor at
//! least as large as the host's, and the `modelgate-plugin` SDK's major
//! (for 0.x: minor) version. Nothing else has to match: not the compiler,
//! not the target directory, not the tokio or serde versions. Libraries are
//! never unloaded.

use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use gateway_core::registry::{BackendContext, BuildError, DialectProvider, Registry};
use gateway_core::{
    ChatEvent, ChatRequest, ChatResponse, ChatStream, Gateway, GatewayError, ProviderAdapter,
};
use modelgate_plugin::wire::{BackendConfig, WireError};
use modelgate_plugin::{
    ABI_VERSION, CALLBACK_END, CALLBACK_ERROR, CALLBACK_EVENT, ENTRY_SYMBOL, PluginDescriptor,
    RawBuffer, SDK_VERSION,
};
use tokio::sync::mpsc;

/// Why a plugin could not be used; every message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {path}: {reason}")]
pub struct PluginError {
    /// The library's path as configured.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A loaded plugin, as `modelgate plugins` lists it.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    /// The library's path.
    pub path: String,
    /// The plugin's own name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The `modelgate-plugin` SDK version it was built with.
    pub sdk_version: String,
    /// The dialects it provides.
    pub dialects: Vec<String>,
    descriptor: &'static PluginDescriptor,
}

fn c_text(pointer: *const c_char) -> String {
    if pointer.is_null() {
        return String::new();
    }
    // SAFETY: descriptor strings are static and NUL-terminated (checked
    // non-null above).
    unsafe { CStr::from_ptr(pointer) }
        .to_string_lossy()
        .into_owned()
}

/// The major version for compatibility: `0.x` counts `x` as major.
fn compatibility(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}"),
        (Some(major), _) => major.to_owned(),
        _ => version.to_owned(),
    }
}

/// Checks a descriptor against what this host understands.
pub fn check_descriptor(descriptor: &PluginDescriptor, path: &str) -> Result<(), PluginError> {
    let fail = |reason: String| PluginError {
        path: path.to_owned(),
        reason,
    };
    if descriptor.abi_version != ABI_VERSION {
        return Err(fail(format!(
            "ABI version mismatch: the plugin was built for ABI {}, this modelgate speaks ABI {ABI_VERSION}; rebuild the plugin against a matching modelgate-plugin",
            descriptor.abi_version
        )));
    }
    if (descriptor.struct_size as usize) < size_of::<PluginDescriptor>() {
        return Err(fail(format!(
            "descriptor too small: {} bytes, this modelgate needs {}",
            descriptor.struct_size,
            size_of::<PluginDescriptor>()
        )));
    }
    let host_sdk = SDK_VERSION.trim_end_matches('\0');
    let plugin_sdk = c_text(descriptor.sdk_version);
    if compatibility(&plugin_sdk) != compatibility(host_sdk) {
        return Err(fail(format!(
            "SDK version mismatch: the plugin was built with modelgate-plugin {plugin_sdk}, this modelgate has {host_sdk}"
        )));
    }
    if descriptor.dialect_count == 0 || descriptor.dialects.is_null() {
        return Err(fail("the plugin provides no dialects".to_owned()));
    }
    Ok(())
}

/// Loads the library at `path` and checks its descriptor. The library is
/// never unloaded (unloading Rust code with thread-locals is unsound).
pub fn load(path: &Path) -> Result<LoadedPlugin, PluginError> {
    let shown = path.display().to_string();
    let fail = |reason: String| PluginError {
        path: shown.clone(),
        reason,
    };
    // SAFETY: loading a library runs its initialisers; that is the point of
    // a plugin, and the operator chose the file.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|err| fail(format!("not a loadable shared library: {err}")))?;
    // SAFETY: the symbol's type is fixed by the ABI; a library exporting
    // the name with another type is a broken plugin we cannot detect.
    let entry = unsafe {
        library.get::<extern "C" fn() -> *const PluginDescriptor>(ENTRY_SYMBOL.as_bytes())
    }
    .map_err(|_| {
        fail(format!(
            "missing entry point `{ENTRY_SYMBOL}`; is this a modelgate plugin built with modelgate_plugin::export_plugin!?"
        ))
    })?;
    let pointer =
        catch_unwind(|| entry()).map_err(|_| fail("the entry point panicked".to_owned()))?;
    if pointer.is_null() {
        return Err(fail("the entry point returned no descriptor".to_owned()));
    }
    // Never unload: the descriptor and every fn pointer stay valid.
    std::mem::forget(library);
    // SAFETY: non-null, and static for the life of the (never unloaded)
    // library. Only the ABI-version and size fields are read before the
    // checks below confirm the layout.
    let descriptor: &'static PluginDescriptor = unsafe { &*pointer };
    check_descriptor(descriptor, &shown)?;
    let dialects = (0..descriptor.dialect_count)
        // SAFETY: `dialect_count` pointers to static C strings (checked).
        .map(|index| c_text(unsafe { *descriptor.dialects.add(index) }))
        .collect();
    Ok(LoadedPlugin {
        path: shown,
        name: c_text(descriptor.plugin_name),
        version: c_text(descriptor.plugin_version),
        sdk_version: c_text(descriptor.sdk_version),
        dialects,
        descriptor,
    })
}

/// Loads every configured plugin into `registry`. Paths are relative to
/// `base`; a plugin marked optional that fails is skipped and reported in
/// the returned warnings.
pub fn load_all(
    plugins: &[gateway_core::config::PluginConfig],
    base: &Path,
    registry: &mut Registry,
) -> Result<(Vec<LoadedPlugin>, Vec<PluginError>), PluginError> {
    let mut loaded = Vec::new();
    let mut warnings = Vec::new();
    for plugin in plugins {
        let path: PathBuf = base.join(&plugin.path);
        let result = load(&path).and_then(|found| {
            for dialect in &found.dialects {
                let provider = Arc::new(PluginDialect {
                    plugin: Arc::new(found.clone()),
                    dialect: dialect.clone(),
                });
                registry.insert(provider).map_err(|err| PluginError {
                    path: found.path.clone(),
                    reason: err.to_string(),
                })?;
            }
            Ok(found)
        });
        match result {
            Ok(found) => loaded.push(found),
            Err(err) if plugin.optional => warnings.push(err),
            Err(err) => return Err(err),
        }
    }
    Ok((loaded, warnings))
}

/// One dialect of a loaded plugin, as the registry sees it.
struct PluginDialect {
    plugin: Arc<LoadedPlugin>,
    dialect: String,
}

impl DialectProvider for PluginDialect {
    fn dialect(&self) -> &str {
        &self.dialect
    }

    fn origin(&self) -> String {
        format!(
            "plugin {} {} ({})",
            self.plugin.name, self.plugin.version, self.plugin.path
        )
    }

    fn build(&self, backend: &BackendContext) -> Result<Arc<dyn ProviderAdapter>, BuildError> {
        let config = BackendConfig {
            id: backend.id.clone(),
            endpoint: backend.endpoint.as_ref().map(ToString::to_string),
            credential: backend
                .credential
                .as_ref()
                .map(|secret| secret.expose().to_owned()),
            options: backend.options.clone(),
        };
        let config = serde_json::to_vec(&config).map_err(|err| BuildError {
            field: None,
            message: format!("cannot encode the backend for the plugin: {err}"),
        })?;
        let dialect = CString::new(self.dialect.clone()).map_err(|_| BuildError {
            field: Some("dialect"),
            message: "the dialect name contains a NUL byte".to_owned(),
        })?;
        let descriptor = self.plugin.descriptor;
        let mut error = RawBuffer::empty();
        // SAFETY: the arguments follow the ABI; `error` is writable.
        let handle = unsafe {
            (descriptor.create)(dialect.as_ptr(), config.as_ptr(), config.len(), &mut error)
        };
        if handle.is_null() {
            let message = if error.ptr.is_null() {
                "the plugin refused the backend".to_owned()
            } else {
                // SAFETY: the plugin wrote `len` bytes at `ptr`; we copy them
                // and hand the buffer back to the plugin to free.
                let text = String::from_utf8_lossy(unsafe {
                    std::slice::from_raw_parts(error.ptr, error.len)
                })
                .into_owned();
                // SAFETY: a buffer the plugin allocated, freed once.
                unsafe { (descriptor.free_buffer)(error) };
                text
            };
            return Err(BuildError {
                field: None,
                message: format!("plugin {}: {message}", self.plugin.path),
            });
        }
        Ok(Arc::new(PluginAdapter {
            plugin: self.plugin.clone(),
            dialect: self.dialect.clone(),
            handle: AdapterHandle(handle),
        }))
    }
}

/// The plugin's adapter handle; only passed back to the plugin.
struct AdapterHandle(*mut c_void);

// SAFETY: the plugin's exports take the handle from any thread (they
// synchronise internally); the host never dereferences it.
unsafe impl Send for AdapterHandle {}
// SAFETY: as above.
unsafe impl Sync for AdapterHandle {}

/// A backend served by a plugin dialect.
struct PluginAdapter {
    plugin: Arc<LoadedPlugin>,
    dialect: String,
    handle: AdapterHandle,
}

impl Drop for PluginAdapter {
    fn drop(&mut self) {
        // SAFETY: the handle came from `create` and is destroyed once.
        unsafe { (self.plugin.descriptor.destroy)(self.handle.0) };
    }
}

/// What the host callback forwards into the call's channel.
type Message = Result<ChatEvent, GatewayError>;

/// Receives a plugin's callbacks for one call. `ctx` is a boxed sender,
/// freed on `END`.
unsafe extern "C" fn on_callback(ctx: *mut c_void, kind: u32, data: *const u8, len: usize) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if ctx.is_null() {
            return;
        }
        if kind == CALLBACK_END {
            // SAFETY: ctx is the Box created in `chat_stream`; END comes once.
            drop(unsafe { Box::from_raw(ctx.cast::<mpsc::UnboundedSender<Message>>()) });
            return;
        }
        // SAFETY: valid until END, which has not come yet.
        let sender = unsafe { &*ctx.cast::<mpsc::UnboundedSender<Message>>() };
        let bytes = if data.is_null() {
            &[][..]
        } else {
            // SAFETY: the plugin passes `len` readable bytes for this call.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        let message = match kind {
            CALLBACK_EVENT => serde_json::from_slice::<ChatEvent>(bytes).map_err(|err| {
                GatewayError::upstream(format!("the plugin sent a bad event: {err}"))
            }),
            CALLBACK_ERROR => Err(match serde_json::from_slice::<WireError>(bytes) {
                Ok(err) => err.into_gateway_error("plugin"),
                Err(err) => GatewayError::upstream(format!("the plugin sent a bad error: {err}")),
            }),
            other => Err(GatewayError::upstream(format!(
                "the plugin sent an unknown callback kind {other}"
            ))),
        };
        let _ = sender.send(message);
    }));
}

/// A plugin call's events; dropping it before the end cancels the call.
struct PluginStream {
    events: mpsc::UnboundedReceiver<Message>,
    plugin: Arc<LoadedPlugin>,
    handle: *mut c_void,
    call: u64,
    done: bool,
}

// SAFETY: the handle is only passed back to the plugin's thread-safe exports.
unsafe impl Send for PluginStream {}

impl Stream for PluginStream {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let polled = self.events.poll_recv(cx);
        if let Poll::Ready(None) = polled {
            self.done = true;
        }
        polled
    }
}

impl Drop for PluginStream {
    fn drop(&mut self) {
        if !self.done {
            // SAFETY: a live handle and a call id the plugin gave us.
            unsafe { (self.plugin.descriptor.cancel)(self.handle, self.call) };
        }
    }
}

#[async_trait]
impl ProviderAdapter for PluginAdapter {
    fn dialect(&self) -> &str {
        &self.dialect
    }

    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, GatewayError> {
        Gateway::collect(self.chat_stream(request).await?).await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, GatewayError> {
        let body = serde_json::to_vec(&request)
            .map_err(|err| GatewayError::internal(format!("cannot encode the request: {err}")))?;
        let (sender, events) = mpsc::unbounded_channel::<Message>();
        let ctx = Box::into_raw(Box::new(sender)).cast::<c_void>();
        let descriptor = self.plugin.descriptor;
        // SAFETY: arguments per the ABI; `ctx` stays valid until END, when
        // `on_callback` frees it.
        let call = unsafe {
            (descriptor.chat)(self.handle.0, body.as_ptr(), body.len(), on_callback, ctx)
        };
        let mut stream = PluginStream {
            events,
            plugin: self.plugin.clone(),
            handle: self.handle.0,
            call,
            done: false,
        };
        // A failure before the first event is an error, not a stream.
        match stream.next().await {
            Some(Err(err)) => Err(err),
            Some(Ok(first)) => Ok(Box::pin(futures::stream::iter([Ok(first)]).chain(stream))),
            None => Err(GatewayError::upstream(format!(
                "plugin {} ended the call without an answer",
                self.plugin.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn create(
        _: *const c_char,
        _: *const u8,
        _: usize,
        _: *mut RawBuffer,
    ) -> *mut c_void {
        std::ptr::null_mut()
    }
    unsafe extern "C" fn chat(
        _: *mut c_void,
        _: *const u8,
        _: usize,
        _: modelgate_plugin::Callback,
        _: *mut c_void,
    ) -> u64 {
        0
    }
    unsafe extern "C" fn cancel(_: *mut c_void, _: u64) {}
    unsafe extern "C" fn free_buffer(_: RawBuffer) {}
    unsafe extern "C" fn destroy(_: *mut c_void) {}
    unsafe extern "C" fn shutdown() {}

    static DIALECT: modelgate_plugin::StaticCStr = modelgate_plugin::StaticCStr(c"fake".as_ptr());

    fn descriptor(
        abi_version: u32,
        struct_size: u32,
        sdk_version: &'static CStr,
    ) -> PluginDescriptor {
        PluginDescriptor {
            abi_version,
            struct_size,
            sdk_version: sdk_version.as_ptr(),
            plugin_name: c"fake".as_ptr(),
            plugin_version: c"1.0.0".as_ptr(),
            dialects: std::ptr::addr_of!(DIALECT).cast(),
            dialect_count: 1,
            create,
            chat,
            cancel,
            free_buffer,
            destroy,
            shutdown,
        }
    }

    #[test]
    fn descriptors_from_other_builds_are_refused_with_the_reason() {
        let size = size_of::<PluginDescriptor>() as u32;
        let sdk = CString::new(SDK_VERSION.trim_end_matches('\0')).expect("no NUL");
        let sdk: &'static CStr = Box::leak(sdk.into_boxed_c_str());
        assert_eq!(
            check_descriptor(&descriptor(ABI_VERSION, size, sdk), "p.so"),
            Ok(())
        );
        let cases = [
            (
                descriptor(ABI_VERSION + 1, size, sdk),
                format!(
                    "plugin p.so: ABI version mismatch: the plugin was built for ABI {}, this modelgate speaks ABI {ABI_VERSION}; rebuild the plugin against a matching modelgate-plugin",
                    ABI_VERSION + 1
                ),
            ),
            (
                descriptor(ABI_VERSION, size - 8, sdk),
                format!(
                    "plugin p.so: descriptor too small: {} bytes, this modelgate needs {size}",
                    size - 8
                ),
            ),
            (
                descriptor(ABI_VERSION, size, c"9.0.0"),
                format!(
                    "plugin p.so: SDK version mismatch: the plugin was built with modelgate-plugin 9.0.0, this modelgate has {}",
                    SDK_VERSION.trim_end_matches('\0')
                ),
            ),
        ];
        for (descriptor, message) in cases {
            let err = check_descriptor(&descriptor, "p.so").expect_err("refused");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn versions_compare_by_major_or_0_minor() {
        assert_eq!(compatibility("0.1.3"), "0.1");
        assert_eq!(compatibility("1.4.0"), "1");
    }
}
