# The example policy of docs/authz-server.md: GET /public/... for anyone;
# /admin/... only for the shop admin identity, and only with x-role: admin.
package weft.authz

default allow := false

allow if {
	input.attributes.request.http.method == "GET"
	input.parsed_path[0] == "public"
}

allow if {
	input.parsed_path[0] == "admin"
	input.source.spiffe_id == "spiffe://weft.local/ns/shop/sa/admin"
	input.attributes.request.http.headers["x-role"] == "admin"
}
