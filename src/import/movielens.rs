//! placeholder replaced by the importer helper
