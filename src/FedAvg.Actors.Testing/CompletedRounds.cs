using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;

namespace FedAvg.Actors.Testing;

/// <summary>
/// "Nothing completed was lost": after a fault, every completed round has its metrics (once, in order, valid) and the
/// checkpoint on disk is the last completed round's, readable, with the run's final weights.
/// </summary>
public static partial class CompletedRounds
{
    /// <summary>Throws <see cref="LostRoundException"/> naming what is missing or invalid.</summary>
    /// <param name="result">What <see cref="Simulation.RunAsync(SimulationOptions, Akka.Configuration.Config, FedAvg.Core.Data.DatasetStore, CancellationToken)"/> returned.</param>
    /// <param name="expectedRounds">The run's last round (its options' Rounds): rounds <paramref name="firstRound"/>..this must all be there.</param>
    /// <param name="firstRound">The first round this run trained (a resumed run starts later).</param>
    /// <param name="checkpointPath">The run's checkpoint file (null: the run kept none).</param>
    public static void Verify(SimulationResult result, int expectedRounds, string? checkpointPath = null, int firstRound = 1)
    {
        var rounds = result.Rounds.Select(r => r.Round).ToList();
        var expected = Enumerable.Range(firstRound, expectedRounds - firstRound + 1).ToList();
        if (!rounds.SequenceEqual(expected))
            throw new LostRoundException($"rounds completed: [{string.Join(", ", rounds)}], expected [{string.Join(", ", expected)}]");
        foreach (var m in result.Rounds)
        {
            if (!(m.TestAccuracy >= 0 && m.TestAccuracy <= 1) || !double.IsFinite(m.TestLoss))
                throw new LostRoundException($"round {m.Round}: invalid metrics (accuracy {m.TestAccuracy}, loss {m.TestLoss})");
            if (m.Succeeded + m.Failed != m.Sampled || m.Succeeded < 1)
                throw new LostRoundException($"round {m.Round}: {m.Succeeded} succeeded + {m.Failed} failed ≠ {m.Sampled} sampled");
        }
        if (checkpointPath is null) return;
        if (!File.Exists(checkpointPath)) throw new LostRoundException($"no checkpoint at {checkpointPath}");
        Checkpoint checkpoint;
        try
        {
            checkpoint = Checkpoint.Load(checkpointPath);
        }
        catch (Exception e)
        {
            throw new LostRoundException($"the checkpoint {checkpointPath} does not load: {e.Message}");
        }
        if (checkpoint.Round != expectedRounds)
            throw new LostRoundException($"the checkpoint holds round {checkpoint.Round}, the last completed round is {expectedRounds}");
        if (result.FinalWeights is { } w && !checkpoint.Weights.AsSpan().SequenceEqual(w))
            throw new LostRoundException("the checkpoint's weights are not the run's final weights");
    }
}

public static partial class CompletedRounds
{
    /// <summary>
    /// The same for a `fedavg simulate` (or `fedavg server`) run directory: rounds.jsonl has one valid record per
    /// completed round 1..<paramref name="expectedRounds"/>, rounds.csv a line for each, and checkpoint.bin holds the last.
    /// </summary>
    public static void VerifyRunDirectory(string runDirectory, int expectedRounds)
    {
        string jsonl = Path.Combine(runDirectory, "rounds.jsonl"), csv = Path.Combine(runDirectory, "rounds.csv");
        if (!File.Exists(jsonl) || !File.Exists(csv)) throw new LostRoundException($"{runDirectory}: rounds.jsonl or rounds.csv is missing");
        var records = new List<RoundMetrics>();
        foreach (var (line, i) in File.ReadLines(jsonl).Select((l, i) => (l, i + 1)))
        {
            RoundMetrics? m;
            try
            {
                m = System.Text.Json.JsonSerializer.Deserialize<RoundMetrics>(line);
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new LostRoundException($"{jsonl}:{i}: not a round record ({e.Message})");
            }
            records.Add(m ?? throw new LostRoundException($"{jsonl}:{i}: empty record"));
        }
        int csvRounds = File.ReadAllLines(csv).Length - 1;
        if (csvRounds != expectedRounds) throw new LostRoundException($"{csv} has {csvRounds} rounds, expected {expectedRounds}");
        var result = new SimulationResult(true, null, records, null, null, null!, TimeSpan.Zero, TimeSpan.Zero);
        Verify(result, expectedRounds, Path.Combine(runDirectory, Checkpoint.FileName));
    }
}

/// <summary>A completed round's record or checkpoint is missing or invalid.</summary>
public sealed class LostRoundException(string message) : Exception(message);
