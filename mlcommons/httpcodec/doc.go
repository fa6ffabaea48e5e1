// Package httpcodec handles the content codings of the ML API's requests
// and answers as OpenSearch's HTTP layer does: compressed request bodies
// are inflated before the handler reads them, and answers are compressed
// when the client accepts it (http.compression, on by default).
//
// What OpenSearch does (source files read, opensearch-project/OpenSearch
// and netty/netty 4.1):
//
//   - Netty4HttpServerTransport
//     (modules/transport-netty4/.../http/netty4/Netty4HttpServerTransport.java)
//     puts Netty's HttpContentDecompressor before the HttpObjectAggregator
//     that enforces http.max_content_length, so the limit counts
//     decompressed bytes. DecodeBody does the same, and reports going over
//     as *http.MaxBytesError.
//   - HttpContentDecompressor
//     (codec-http/.../handler/codec/http/HttpContentDecompressor.java)
//     matches the trimmed Content-Encoding case-insensitively: gzip and
//     x-gzip as gzip; deflate and x-deflate as ZLIB_OR_NONE, that is
//     zlib-wrapped or raw deflate, decided by the first two bytes
//     (JdkZlibDecoder.looksLikeZlib). DecodeBody accepts the same names and
//     both deflate forms. Newer Netty also knows snappy, and br and zstd
//     when their native libraries are present; OpenSearch's module ships
//     neither library, and snappy has no decoder in Go's standard library,
//     so those three are refused here.
//   - Any other coding, identity included, makes HttpContentDecoder pass
//     the body on as it is: OpenSearch has no error of its own for an
//     unknown coding, the compressed bytes simply fail to parse as JSON.
//     DecodeBody answers *UnsupportedEncodingError instead, which the caller
//     maps to 400; an empty Content-Encoding and identity pass as they are.
//     A list of codings ("gzip, deflate") is one unknown name to Netty, and
//     unsupported here too.
//   - Netty's JdkZlibDecoder stops after the first gzip member and ignores
//     what follows. DecodeBody decodes every member (RFC 1952 section 2.2),
//     so it never drops data silently, and refuses bytes after the last
//     member that are not another member. A stream that is corrupt, fails
//     its checksum or ends early is *DecodeError (400 for the caller);
//     Netty's DecompressionException is likewise a client error.
//   - Netty does not bound the compressed bytes; DecodeBody does, at the
//     limit plus a sixty-fourth plus 64 KiB (far above deflate's worst-case
//     overhead), so a stream of empty gzip members cannot run forever.
//   - Answers: Netty4HttpServerTransport adds
//     HttpContentCompressor(http.compression_level) when http.compression is
//     true (HttpTransportSettings: true and 3 by default). That constructor
//     only knows gzip and deflate; HttpContentCompressor.determineWrapper
//     picks by q-value with gzip winning ties, "*" standing for the coding
//     not named, q=0 refusing, and it matches names as case-sensitive
//     substrings. No Accept-Encoding means no compression. deflate answers
//     are zlib-wrapped.
//   - HttpContentEncoder (codec-http/.../HttpContentEncoder.java) leaves
//     alone answers to HEAD, 1xx, 204 and 304 answers, HTTP/1.0 requests,
//     empty bodies and answers that already have a Content-Encoding; there
//     is no size threshold (contentSizeThreshold 0). It sets
//     Content-Encoding and the compressed Content-Length, and adds no Vary
//     header, so Write adds none either.
package httpcodec
