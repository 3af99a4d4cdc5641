"""Local stack without Docker: serves template.yaml over DynamoDB Local (see README)."""
