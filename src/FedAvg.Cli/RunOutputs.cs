using System.Globalization;
using System.Text;
using System.Text.Json;
using FedAvg.Actors.Messages;
using FedAvg.Core;
using FedAvg.Core.Runtime;

namespace FedAvg.Cli;

/// <summary>
/// The files of one run directory. Every file is rewritten whole and atomically, so a run stopped at any moment
/// leaves each of them either as before or as after its last round.
/// </summary>
public sealed class RunOutputs(string directory)
{
    public const string RoundsCsv = "rounds.csv";
    public const string RoundsJsonl = "rounds.jsonl";
    public const string ConfigFile = "config.conf";
    public const string ModelFile = "model.ts";
    public const string PlotFile = "accuracy.png";
    public const string SummaryFile = "summary.json";

    static readonly string[] Owned = [RoundsCsv, RoundsJsonl, ConfigFile, ModelFile, PlotFile, SummaryFile, Checkpoint.FileName];

    public string Directory { get; } = Path.GetFullPath(directory);
    readonly List<RoundMetrics> rounds = [];

    public string PathOf(string file) => Path.Combine(Directory, file);

    /// <summary>
    /// Checks, leaving nothing behind (its write probe is deleted at once), that the directory can take this run: not a file, writable, and not an earlier run unless the
    /// user said so (--force or --resume); a resumed run's rounds are read back. <see cref="Create"/> comes once the
    /// run has started, so a run refused at start leaves no directory behind.
    /// </summary>
    public void Check(bool force, bool resume)
    {
        string flag = resume ? "--resume" : "--out";
        if (OutputPath.FileAtOrAbove(Directory) is { } file)
            throw new UsageException(file == Directory
                ? $"{flag} {Directory} is a file; give the run directory (a new or empty one, or an earlier run's with --resume)."
                : $"{flag} {Directory}: {file} is a file, so no directory can be made under it.");
        // an existing empty directory this user cannot write in would pass everything else and fail at the first round
        OutputPath.CheckWritable(Directory, flag, Directory);
        if (resume)
        {
            if (!File.Exists(PathOf(Checkpoint.FileName)))
                throw new UsageException($"--resume {Directory}: no {Checkpoint.FileName} there to resume from.");
            rounds.Clear();
            rounds.AddRange(ReadJsonl());
            return;
        }
        if (System.IO.Directory.Exists(Directory) && System.IO.Directory.EnumerateFileSystemEntries(Directory).Any() && !force)
            throw new UsageException($"--out {Directory} already exists and is not empty; pass --resume to continue that run or --force to replace it.");
        replace = force;
    }

    bool replace;

    /// <summary>Makes the directory (and its parents), removing an earlier run's files when --force said so.</summary>
    public void Create()
    {
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            if (replace)
                foreach (var file in Owned)
                    if (File.Exists(PathOf(file))) File.Delete(PathOf(file));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--out {Directory}: cannot be created ({e.Message}).");
        }
    }

    public IReadOnlyList<RoundMetrics> Rounds => rounds;

    public void Add(RoundMetrics metrics)
    {
        rounds.RemoveAll(r => r.Round >= metrics.Round); // a resumed run replays nothing, but be safe
        rounds.Add(metrics);
        AtomicFile.WriteAllText(PathOf(RoundsCsv), Csv(rounds));
        AtomicFile.WriteAllText(PathOf(RoundsJsonl), string.Concat(rounds.Select(r => JsonSerializer.Serialize(r) + "\n")));
    }

    public static string Csv(IEnumerable<RoundMetrics> rounds)
    {
        var csv = new StringBuilder("round,sampled,succeeded,failed,attempts,test_loss,test_accuracy,mean_train_loss," +
                                    "training_s,trainer_busy_s,aggregation_s,evaluation_s,round_s,median_update_norm,faults,rejected\n");
        foreach (var r in rounds)
            csv.Append(CultureInfo.InvariantCulture,
                $"{r.Round},{r.Sampled},{r.Succeeded},{r.Failed},{r.Attempts},{r.TestLoss:R},{r.TestAccuracy:R},{r.MeanTrainLoss:R}," +
                $"{r.TrainingSeconds:F4},{r.TrainerBusySeconds:F4},{r.AggregationSeconds:F4},{r.EvaluationSeconds:F4},{r.RoundSeconds:F4},{r.MedianUpdateNorm:R}," +
                $"{CsvField(string.Join("; ", r.FaultsOrEmpty))},{CsvField(string.Join("; ", r.RejectedOrEmpty))}\n");
        return csv.ToString();
    }

    /// <summary>A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.</summary>
    static string CsvField(string text) =>
        text.IndexOfAny([',', '"', '\n', '\r']) < 0 ? text : "\"" + text.Replace("\"", "\"\"") + "\"";

    IEnumerable<RoundMetrics> ReadJsonl()
    {
        string path = PathOf(RoundsJsonl);
        if (!File.Exists(path)) yield break;
        int line = 0;
        foreach (var text in File.ReadLines(path))
        {
            line++;
            if (text.Length == 0) continue;
            RoundMetrics? metrics;
            try
            {
                metrics = JsonSerializer.Deserialize<RoundMetrics>(text);
            }
            catch (JsonException e)
            {
                throw new DataException($"{path}:{line}: not a round record ({e.Message}).");
            }
            if (metrics is null) throw new DataException($"{path}:{line}: empty round record.");
            yield return metrics;
        }
    }
}
