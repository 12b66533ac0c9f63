//! Config errors that point at the field (and line) at fault.

use std::fmt;

use super::path::FieldPath;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Where: `backends[1].models[0].id`.
    pub path: FieldPath,
    /// What is wrong, and where possible what would be right.
    pub message: String,
    /// The 1-based line in the file, when it could be found.
    pub line: Option<usize>,
}

impl ConfigIssue {
    /// An issue at `path`.
    pub fn new(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
            line: None,
        }
    }
}

/// Everything wrong with one config source, reported together so a user
/// fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file path, or `<embedded default>`.
    pub source_name: String,
    /// The problems, in document order where known.
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    /// An error about something other than the file's contents (unreadable
    /// file, unknown extension).
    pub fn whole_file(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source_name: source_name.into(),
            issues: vec![ConfigIssue::new(FieldPath::root(), message)],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.issues.len();
        write!(
            f,
            "{} has {count} error{}:",
            self.source_name,
            if count == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {}", self.source_name)?;
            if let Some(line) = issue.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": {}: {}", issue.path, issue.message)?;
        }
        Ok(())
    }
}
