"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), served beside
the REST app by ``ferry serve --grpc-port`` (ferryml[grpc])."""

from ferryml.server.rpc.server import start_grpc

__all__ = ["start_grpc"]
