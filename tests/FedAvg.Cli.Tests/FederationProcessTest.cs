using System.Text.Json;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;
using FedAvg.Tests.Shared;

namespace FedAvg.Cli.Tests;

/// <summary>
/// What the process tests of `fedavg server` and `fedavg node` share: the processes they start (all killed in
/// Dispose, whatever the test did), the run's settings, and reading a run directory back.
/// </summary>
public abstract class FederationProcessTest : IDisposable
{
    protected static readonly TimeSpan Start = TimeSpan.FromSeconds(90);
    readonly List<FedavgProcess> processes = [];

    protected FedavgProcess Launch(string name, params string[] args)
    {
        var p = new FedavgProcess(name, args);
        processes.Add(p);
        return p;
    }

    public virtual void Dispose()
    {
        foreach (var p in processes) p.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>The run's settings, the same for `simulate` and `server`.</summary>
    protected static string[] Run(string outDir, int rounds = 3, string partition = "iid:300", params string[] extra) =>
    [
        "--data-dir", TestData.DataDir, "--out", outDir, "--clients", "4", "--partition", partition, "--rounds", rounds.ToString(),
        "--local-epochs", "1", "--lr", "0.05", "--momentum", "0.5", "--trainers", "1", "--seed", "5", .. extra,
    ];

    /// <summary>A plaintext `fedavg server` on loopback with the run's settings; the port it listens on (port 0: the OS picks one).</summary>
    protected async Task<(FedavgProcess Server, int Port)> StartServer(string outDir, int rounds = 3, string partition = "iid:300", int port = 0,
        params string[] extra)
    {
        var server = Launch("server", ["server", .. Run(outDir, rounds, partition), "--port", port.ToString(), .. extra]);
        var listening = await server.WaitForLine(@"listening at akka\.tcp://fedavg@127\.0\.0\.1:(\d+)", Start);
        return (server, int.Parse(listening.Groups[1].Value));
    }

    protected FedavgProcess StartNode(string name, int port, string clients, params string[] extra) =>
        Launch(name, ["node", "--join", $"127.0.0.1:{port}", "--clients", clients, "--trainers", "1", "--node-id", name,
            "--data-dir", TestData.DataDir, .. extra]);

    protected static float[] FinalWeights(string runDir) => Checkpoint.Load(Path.Combine(runDir, Checkpoint.FileName)).Weights;

    protected static List<RoundMetrics> Rounds(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, "rounds.jsonl")).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<RoundMetrics>(l)!).ToList();
}
