//! Whether and how an informer compresses object bodies.

/// Compression of stored object bodies ([`crate::compress`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Compression {
    /// Bodies are stored as the server sent them (minus decode-time transforms).
    #[default]
    Off,
    /// Bodies are zstd frames made with a dictionary trained on the informer's objects.
    Zstd(ZstdConfig),
}

impl Compression {
    /// zstd with the default settings ([`ZstdConfig::default`]).
    pub fn zstd() -> Self {
        Compression::Zstd(ZstdConfig::default())
    }
}

/// Settings of zstd compression with a trained dictionary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZstdConfig {
    /// zstd level (default 3; 9 compresses ~20% better and ~3x slower, decompression
    /// costs the same).
    pub level: i32,
    /// Largest dictionary trained (default 64 KiB).
    pub dict_bytes: usize,
    /// Objects sampled to train a dictionary (default 1,000): training starts once
    /// this many were stored, or [`ZstdConfig::sample_bytes`] reached, or when the
    /// initial list completes with fewer. Objects of 2 KiB or more reach the byte cap
    /// first (~390 pods of 5.4 KB); more pods hardly compress better (1,000 pods:
    /// frames 0-5% smaller, for 2.6x the memory while sampling).
    pub sample_objects: usize,
    /// Bytes sampled to train a dictionary (default 2 MiB): training starts once the
    /// sampled objects add up to this many (the last one may take the sample past
    /// it), whatever their number. The sample is a copy of its objects, held until
    /// training ends, and those objects are stored uncompressed until compaction
    /// compresses them: this bounds both for a kind of large objects.
    pub sample_bytes: usize,
    /// Fewest sampled objects a dictionary is trained from (default 16): with fewer,
    /// objects stay uncompressed and sampling goes on.
    pub min_sample_objects: usize,
    /// A frame is kept only when it is under this share of the object's size
    /// (default 0.9); otherwise the object is stored uncompressed.
    pub keep_below: f64,
    /// A trained dictionary is used only when it compresses its own sample by at
    /// least this ratio (default 1.5): a kind whose objects share nothing stays
    /// uncompressed instead of paying for frames that save nothing.
    pub min_trained_ratio: f64,
    /// Retrain when the ratio of the objects compressed since the dictionary was
    /// trained falls under this share of the ratio it had on its sample
    /// (default 0.5), measured over at least [`ZstdConfig::retrain_window`] objects.
    pub retrain_below: f64,
    /// Objects compressed with a dictionary before its running ratio is judged
    /// (default 2,000).
    pub retrain_window: u64,
    /// Objects larger than this are stored uncompressed (default 1 MiB): every read
    /// of a body decompresses it whole.
    pub max_object_bytes: usize,
    /// Train on the thread that filled the sample (the watch task decoding the
    /// initial list: one stall of ~30-80 ms for a 2 MiB sample) so that the rest of the
    /// list is compressed as it is decoded (default true). When false, training runs
    /// on a thread of its own and the list goes on uncompressed meanwhile (a 10k-pod
    /// list is then stored whole before the dictionary exists, and compressed later
    /// by compaction: more memory at sync).
    pub train_inline: bool,
}

impl Default for ZstdConfig {
    fn default() -> Self {
        ZstdConfig {
            level: 3,
            dict_bytes: 64 << 10,
            sample_objects: 1_000,
            sample_bytes: 2 << 20,
            min_sample_objects: 16,
            keep_below: 0.9,
            min_trained_ratio: 1.5,
            retrain_below: 0.5,
            retrain_window: 2_000,
            max_object_bytes: 1 << 20,
            train_inline: true,
        }
    }
}
