//! The source bucket's store: s3s-fs, with what a read-heavy S3 client expects of S3 and s3s-fs 0.14.1
//! does not do itself.
//!
//! - A listing names each object's ETag (s3s-fs leaves `<ETag>` out of `ListObjectsV2`): the MD5 s3s-fs
//!   saved when the object was put, or one computed from the file.
//! - A listing holds at most 1,000 keys, whatever `max-keys` asks for, as S3's does.
//! - Deleting an object deletes what s3s-fs keeps beside it (its saved ETag and attributes), so that a
//!   file later put on disk under the same key is not served with the old ETag.
//!
//! Everything else is s3s-fs's own, and only the operations a source needs are offered: buckets (list,
//! head, location, create, delete), objects (head, get with `Range`, put, copy, delete, delete many),
//! listings (v1 and v2) and multipart uploads. Conditional GET and HEAD (`If-Match` and the others) are
//! evaluated over HTTP, around s3s (see `bucket.rs`).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::{Digest, Md5};
use s3s::dto::{self, ETag};
use s3s::{S3, S3Request, S3Response, S3Result};

/// S3's most keys in one listing.
const MAX_KEYS: i32 = 1000;

/// The s3s-fs file system behind the source bucket, shared by the service and the Rust helpers.
#[derive(Clone)]
pub(crate) struct SourceStore {
    inner: Arc<Inner>,
}

struct Inner {
    fs: s3s_fs::FileSystem,
    /// The store's root (canonical): bucket `b` is the directory `<root>/b`.
    root: PathBuf,
    md5s: Md5Cache,
}

impl SourceStore {
    pub(crate) fn new(root: &Path) -> io::Result<Self> {
        let fs = s3s_fs::FileSystem::new(root)
            .map_err(|e| io::Error::other(format!("s3s-fs refused the store: {e:?}")))?;
        Ok(Self { inner: Arc::new(Inner { fs, root: root.to_owned(), md5s: Md5Cache::default() }) })
    }

    /// Where s3s-fs keeps what it knows of an object beside its bytes: `.internal.json` (the ETag,
    /// checksums) and `.metadata.json` (content type, user metadata), at the root, named by the bucket
    /// and key in URL-safe base64.
    fn sidecar(&self, bucket: &str, key: &str, kind: &str) -> PathBuf {
        let name = format!(
            ".bucket-{}.object-{}.{kind}.json",
            URL_SAFE_NO_PAD.encode(bucket),
            URL_SAFE_NO_PAD.encode(key)
        );
        self.inner.root.join(name)
    }

    /// The ETag s3s-fs serves for an object, quoted: the one it saved, else the MD5 of the file.
    async fn etag(&self, bucket: &str, key: &str) -> io::Result<String> {
        match tokio::fs::read(self.sidecar(bucket, key, "internal")).await {
            Ok(json) => {
                let info: serde_json::Value = serde_json::from_slice(&json).map_err(io::Error::other)?;
                if let Some(etag) = info.get("e_tag").and_then(|etag| etag.as_str()) {
                    return Ok(format!("\"{etag}\""));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.inner.md5s.etag(&self.inner.root.join(bucket).join(key)).await
    }

    /// Puts an object, as a PutObject request would: its ETag (quoted) back.
    pub(crate) async fn put(&self, bucket: &str, key: &str, bytes: bytes::Bytes) -> io::Result<String> {
        let len = i64::try_from(bytes.len()).map_err(io::Error::other)?;
        let input = dto::PutObjectInput::builder()
            .bucket(bucket.to_owned())
            .key(key.to_owned())
            .content_length(Some(len))
            .body(Some(dto::StreamingBlob::from(s3s::Body::from(bytes))))
            .build()
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        let output = self.put_object(request(input)).await.map_err(s3_to_io)?.output;
        Ok(output.e_tag.map(|etag| show_etag(&etag)).unwrap_or_default())
    }

    /// Deletes an object, as a DeleteObject request would.
    pub(crate) async fn delete(&self, bucket: &str, key: &str) -> io::Result<()> {
        let input = dto::DeleteObjectInput::builder()
            .bucket(bucket.to_owned())
            .key(key.to_owned())
            .build()
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        self.delete_object(request(input)).await.map_err(s3_to_io)?;
        Ok(())
    }

    /// Deletes what s3s-fs keeps beside a deleted object (see the module docs).
    async fn forget(&self, bucket: &str, key: &str) -> S3Result<()> {
        if tokio::fs::try_exists(self.inner.root.join(bucket).join(key)).await.unwrap_or(true) {
            // Not deleted after all (a directory key that was not empty, say).
            return Ok(());
        }
        for kind in ["internal", "metadata"] {
            match tokio::fs::remove_file(self.sidecar(bucket, key, kind)).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(s3s::S3Error::internal_error(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Fills in the ETag of every object listed.
    async fn fill_etags(&self, bucket: &str, objects: Option<&mut Vec<dto::Object>>) -> S3Result<()> {
        for object in objects.into_iter().flatten() {
            if object.e_tag.is_some() {
                continue;
            }
            let Some(key) = object.key.as_deref() else { continue };
            let etag = self.etag(bucket, key).await.map_err(s3s::S3Error::internal_error)?;
            object.e_tag = Some(ETag::Strong(etag.trim_matches('"').to_owned()));
        }
        Ok(())
    }
}

/// An ETag as the header shows it.
pub(crate) fn show_etag(etag: &ETag) -> String {
    match etag {
        ETag::Strong(value) => format!("\"{value}\""),
        ETag::Weak(value) => format!("W/\"{value}\""),
    }
}

fn s3_to_io(e: s3s::S3Error) -> io::Error {
    let kind = if *e.code() == s3s::S3ErrorCode::NoSuchBucket {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, format!("{}: {}", e.code().as_str(), e.message().unwrap_or_default()))
}

/// A request made from Rust, not over HTTP: s3s-fs reads only its input (and the credentials, for
/// multipart uploads, which the helpers do not use).
fn request<T>(input: T) -> S3Request<T> {
    S3Request {
        input,
        method: hyper::Method::PUT,
        uri: hyper::Uri::from_static("/"),
        headers: hyper::HeaderMap::new(),
        extensions: hyper::http::Extensions::new(),
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// MD5s of files without a saved ETag, remembered while the file keeps its size and modification time.
///
/// A file modified in the last two seconds is hashed anew on every request: file times are coarse (a
/// few milliseconds on Linux), and a file rewritten in place with the same size inside one tick would
/// otherwise keep its old ETag.
#[derive(Debug, Default)]
pub(crate) struct Md5Cache {
    entries: Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>,
}

/// How old a modification must be for its MD5 to be remembered.
const SETTLED: Duration = Duration::from_secs(2);

impl Md5Cache {
    /// The quoted MD5 of the file at `path`.
    pub(crate) async fn etag(&self, path: &Path) -> io::Result<String> {
        let metadata = tokio::fs::metadata(path).await?;
        let (len, modified) = (metadata.len(), metadata.modified()?);
        {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((l, m, etag)) = entries.get(path)
                && (*l, *m) == (len, modified)
            {
                return Ok(etag.clone());
            }
        }
        let file = path.to_owned();
        let etag = tokio::task::spawn_blocking(move || md5_of(&file)).await.map_err(io::Error::other)??;
        let settled = SystemTime::now().duration_since(modified).is_ok_and(|age| age >= SETTLED);
        if settled {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries.insert(path.to_owned(), (len, modified, etag.clone()));
        }
        Ok(etag)
    }
}

fn md5_of(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut md5 = Md5::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
    }
    Ok(format!("\"{}\"", hex::encode(md5.finalize())))
}

#[async_trait::async_trait]
impl S3 for SourceStore {
    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        self.inner.fs.list_buckets(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        self.inner.fs.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        self.inner.fs.get_bucket_location(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        self.inner.fs.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        self.inner.fs.delete_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        self.inner.fs.head_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        self.inner.fs.get_object(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        self.inner.fs.put_object(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        self.inner.fs.copy_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let response = self.inner.fs.delete_object(req).await?;
        self.forget(&bucket, &key).await?;
        Ok(response)
    }

    /// `object_store` deletes through here (POST `?delete`), even a single object.
    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let keys: Vec<String> = req.input.delete.objects.iter().map(|object| object.key.clone()).collect();
        let response = self.inner.fs.delete_objects(req).await?;
        for key in &keys {
            self.forget(&bucket, key).await?;
        }
        Ok(response)
    }

    async fn list_objects(
        &self,
        mut req: S3Request<dto::ListObjectsInput>,
    ) -> S3Result<S3Response<dto::ListObjectsOutput>> {
        req.input.max_keys = Some(req.input.max_keys.map_or(MAX_KEYS, |n| n.min(MAX_KEYS)));
        let bucket = req.input.bucket.clone();
        let mut response = self.inner.fs.list_objects(req).await?;
        self.fill_etags(&bucket, response.output.contents.as_mut()).await?;
        Ok(response)
    }

    async fn list_objects_v2(
        &self,
        mut req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        req.input.max_keys = Some(req.input.max_keys.map_or(MAX_KEYS, |n| n.min(MAX_KEYS)));
        let bucket = req.input.bucket.clone();
        let mut response = self.inner.fs.list_objects_v2(req).await?;
        self.fill_etags(&bucket, response.output.contents.as_mut()).await?;
        Ok(response)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        self.inner.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        self.inner.fs.upload_part(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        self.inner.fs.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        self.inner.fs.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        self.inner.fs.abort_multipart_upload(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listing_holds_at_most_1000_keys_each_with_its_etag() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("b")).unwrap();
        for i in 0..1_005 {
            std::fs::write(root.join("b").join(format!("k{i:04}")), format!("{i}")).unwrap();
        }
        let store = SourceStore::new(&root).unwrap();
        let input =
            dto::ListObjectsV2Input::builder().bucket("b".to_owned()).max_keys(Some(5_000)).build().unwrap();

        let output = store.list_objects_v2(request(input)).await.unwrap().output;

        let contents = output.contents.unwrap();
        assert_eq!((contents.len(), output.is_truncated, output.max_keys), (1_000, Some(true), Some(1_000)));
        assert_eq!(output.next_continuation_token.as_deref(), Some("k0999"));
        let first = &contents[0];
        assert_eq!(first.key.as_deref(), Some("k0000"));
        let md5 = hex::encode(Md5::digest(b"0"));
        assert_eq!(first.e_tag, Some(ETag::Strong(md5)));
    }
}
