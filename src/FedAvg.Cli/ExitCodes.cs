namespace FedAvg.Cli;

/// <summary>The exit codes of `fedavg`, as documented in the README.</summary>
public static class ExitCodes
{
    public const int Success = 0;
    /// <summary>An unexpected failure while running (a bug, or the machine ran out of something).</summary>
    public const int RuntimeFailure = 1;
    /// <summary>Bad flags, option values or configuration; nothing was started.</summary>
    public const int UsageError = 2;
    /// <summary>Data missing, corrupt or mismatched (IDX files, checksums, checkpoints).</summary>
    public const int DataError = 3;
    /// <summary>The federation could not finish (too few clients answered, a round failed for good).</summary>
    public const int RunFailed = 4;
    /// <summary>A node could not reach its server, or the server was gone for longer than the node waits; or a server
    /// was cut off from the other members and removed from the cluster (a standby takes over).</summary>
    public const int ServerUnreachable = 5;
    /// <summary>The server refused this node (another federation, model or layout, or clients it cannot have).</summary>
    public const int NodeRefused = 6;
    /// <summary>Stopped by Ctrl+C or SIGTERM.</summary>
    public const int Interrupted = 130;
}
