"""Fabric service adapters: codec (protobuf), topology (spec → core), grpc_api, repository, stream."""
