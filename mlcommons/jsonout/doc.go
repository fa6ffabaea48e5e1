// Package jsonout shapes a JSON answer the way OpenSearch's REST layer does
// for the response parameters filter_path and pretty. The ML API's one JSON
// writer calls it on the compact bytes it is about to send.
//
// What OpenSearch does, and so what this package does (source files read,
// opensearch-project/OpenSearch unless named):
//
//   - filter_path is read by AbstractRestChannel
//     (server/src/main/java/org/opensearch/rest/AbstractRestChannel.java):
//     split at commas by Strings.tokenizeByCommaToSet (tokens trimmed, empty
//     ones dropped, duplicates merged); a token starting with '-' is an
//     exclusion of the rest of the token, any other an inclusion.
//   - Inclusions run first, exclusions on what they let through:
//     JsonXContentGenerator
//     (libs/x-content/.../common/xcontent/json/JsonXContentGenerator.java)
//     wraps the exclusive FilteringGeneratorDelegate first and the inclusive
//     one around it, so every token passes the inclusive filter before the
//     exclusive one. The root object bypasses both filters ("the root start
//     object is always written"), so when nothing matches the answer is {}.
//   - An expression is parsed by FilterPath
//     (libs/core/.../core/xcontent/filtering/FilterPath.java): dots separate
//     field names; "\." is a dot inside a name, so "a.b" reaches
//     {"a":{"b":..}} and only "a\.b" reaches a key literally named "a.b".
//     (FilterPath then runs replaceAll("\\\\.", ".") on each name, a regular
//     expression that turns a backslash and whatever single character follows
//     it into a dot; that quirk is kept.) A name is matched by Glob.globMatch
//     (libs/common/.../common/Glob.java): '*' matches any run of characters,
//     nothing else is special. A name that is exactly "**" matches any number
//     of levels, but at least one: "**.name" does not keep a top-level "name"
//     field (FilterPathBasedFilter.evaluate keeps "**" and its successor
//     after every field, so the successor is tried one level down).
//   - Matching is FilterPathBasedFilter
//     (libs/core/.../core/xcontent/filtering/FilterPathBasedFilter.java) in
//     Jackson's FilteringGeneratorDelegate with path inclusion and multiple
//     matches: a field matched by a whole expression is kept (inclusion) or
//     dropped (exclusion) with everything under it; a field on the way to a
//     match is descended into; arrays are transparent (every element sees
//     the filter of the array's field); a scalar on the way to a match is
//     dropped by an inclusion and kept by an exclusion; an object or array
//     on the way that ends up empty is dropped, even one that was empty to
//     begin with (TokenFilter.includeEmptyObject/Array answer false).
//   - An exclusion list that compiles to nothing (filter_path=-) makes
//     FilterPathBasedFilter throw "filters cannot be null or empty", an
//     illegal_argument_exception. OpenSearch throws it when it builds the
//     answer, after the action ran; FromQuery reports it before.
//   - pretty is RestRequest.paramAsBoolean: absent is false, present and
//     empty is true, "true" and "false" are themselves, blank (only white
//     space) is false, anything else fails with "Failed to parse value [x] as
//     only [true] or [false] are allowed." (libs/common/.../Booleans.java).
//     human is parsed the same way in the same constructor and fails the
//     same way, so FromQuery checks it too. Both failures happen while the
//     channel is built; OpenSearch then answers 400 through a channel with no
//     parameters, so that error is neither filtered nor pretty. A repeated
//     parameter counts with its last value (RestUtils.decodeQueryString puts
//     each into a map).
//   - Pretty output is Jackson's DefaultPrettyPrinter with
//     DefaultIndenter("  ", "\n") for objects and arrays
//     (JsonXContentGenerator.usePrettyPrint): two spaces a level, every
//     member and every array element on its own line, `"key" : value`, an
//     empty object `{ }` and an empty array `[ ]`. AbstractRestChannel calls
//     prettyPrint().lfAtEnd(), so a pretty answer ends with "\n"; a compact
//     one does not.
//   - Errors are not filtered: AbstractRestChannel.newErrorBuilder builds
//     with filtering off ("Disable filtering when building error responses"),
//     and BytesRestResponse builds every exception answer with it; pretty
//     still applies. Use RenderError for error bodies.
//
// Render keeps key order, number text and string escapes exactly as they
// are in its input: it copies bytes and never decodes values.
package jsonout
