namespace FedAvg.Actors.Client;

/// <summary>Local training of one round failed on a client; thrown inside the client so that its supervisor restarts it.</summary>
public sealed class ClientTrainingException(string clientId, int round, Exception inner)
    : Exception($"client {clientId} failed to train round {round}: {inner.Message}", inner)
{
    public string ClientId { get; } = clientId;
    public int Round { get; } = round;
}
