package fetch

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// bucket fetches s3:// and gs:// URIs through the S3 protocol, which Google
// Cloud Storage speaks too (with HMAC keys).
func (f *fetcher) bucket(ctx context.Context, u *url.URL) error {
	c, err := f.client(u.Scheme)
	if err != nil {
		return err
	}
	bucket, key := u.Host, strings.TrimPrefix(u.Path, "/")
	if key == "" || strings.HasSuffix(key, "/") {
		return f.prefix(ctx, c, u, bucket, key)
	}
	obj, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return f.explain(u, err)
	}
	defer obj.Close()
	if _, err := obj.Stat(); err != nil {
		return f.explain(u, err)
	}
	return f.save(key[strings.LastIndex(key, "/")+1:], obj, nil)
}

// prefix fetches every object under a prefix, at its path below the prefix.
func (f *fetcher) prefix(ctx context.Context, c *minio.Client, u *url.URL, bucket, prefix string) error {
	n := 0
	for info := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			return f.explain(u, info.Err)
		}
		if strings.HasSuffix(info.Key, "/") {
			continue // a "folder" placeholder
		}
		obj, err := c.GetObject(ctx, bucket, info.Key, minio.GetObjectOptions{})
		if err != nil {
			return f.explain(u, err)
		}
		err = f.save(strings.TrimPrefix(info.Key, prefix), obj, nil)
		obj.Close()
		if err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s: no object under that prefix", u)
	}
	return nil
}

func (f *fetcher) client(scheme string) (*minio.Client, error) {
	endpoint, secure := "s3.amazonaws.com", true
	id, secret, token := f.env("AWS_ACCESS_KEY_ID"), f.env("AWS_SECRET_ACCESS_KEY"), f.env("AWS_SESSION_TOKEN")
	override := "AWS_ENDPOINT_URL"
	if scheme == "gs" {
		endpoint, override = "storage.googleapis.com", "STORAGE_EMULATOR_HOST"
		id, secret, token = f.env("GOOGLE_HMAC_ACCESS_ID"), f.env("GOOGLE_HMAC_SECRET"), ""
	}
	if e := f.env(override); e != "" {
		eu, err := url.Parse(e)
		if err != nil || eu.Host == "" || (eu.Scheme != "http" && eu.Scheme != "https") {
			return nil, fmt.Errorf("%s %q is not an http:// or https:// URL", override, e)
		}
		endpoint, secure = eu.Host, eu.Scheme == "https"
	}
	creds := credentials.NewStaticV4(id, secret, token)
	if id == "" {
		creds = credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
	}
	return minio.New(endpoint, &minio.Options{
		Creds: creds, Secure: secure, Region: f.env("AWS_REGION"), Transport: f.o.HTTPClient.Transport,
	})
}

// explain turns the storage's error into one line that says what to check.
func (f *fetcher) explain(u *url.URL, err error) error {
	switch r := minio.ToErrorResponse(err); r.Code {
	case "NoSuchKey":
		return fmt.Errorf("%s: no such object", u)
	case "NoSuchBucket":
		return fmt.Errorf("%s: no such bucket %q", u, u.Host)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return fmt.Errorf("%s: access denied (%s); check the keys in the Secret named by secretRef", u, r.Code)
	}
	return fmt.Errorf("%s: %w", u, err)
}
