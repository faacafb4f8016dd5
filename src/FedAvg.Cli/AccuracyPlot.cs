using System.Globalization;
using FedAvg.Core;
using FedAvg.Core.Runtime;

namespace FedAvg.Cli;

/// <summary>Test accuracy per round as a PNG, with the centralized baseline (accuracy per epoch) on the same axes.</summary>
public static class AccuracyPlot
{
    public static void Save(string path, IReadOnlyList<(int Round, double Accuracy)> federated, string federatedLabel,
        IReadOnlyList<(int Epoch, double Accuracy)>? centralized = null, IReadOnlyList<(int Round, double Accuracy)>? reference = null,
        string referenceLabel = "reference")
    {
        var plot = new ScottPlot.Plot();
        var fed = plot.Add.Scatter(federated.Select(p => (double)p.Round).ToArray(), federated.Select(p => p.Accuracy).ToArray());
        fed.LegendText = federatedLabel;
        if (centralized is { Count: > 0 })
        {
            var c = plot.Add.Scatter(centralized.Select(p => (double)p.Epoch).ToArray(), centralized.Select(p => p.Accuracy).ToArray());
            c.LegendText = "centralized (x = epoch)";
            c.LinePattern = ScottPlot.LinePattern.Dashed;
        }
        if (reference is { Count: > 0 })
        {
            var r = plot.Add.Scatter(reference.Select(p => (double)p.Round).ToArray(), reference.Select(p => p.Accuracy).ToArray());
            r.LegendText = referenceLabel;
            r.LinePattern = ScottPlot.LinePattern.Dotted;
        }
        plot.XLabel("round");
        plot.YLabel("test accuracy");
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        var bytes = plot.GetImageBytes(900, 560, ScottPlot.ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, bytes);
    }

    /// <summary>Reads (x, test_accuracy) pairs from a CSV whose header names <paramref name="xColumn"/> and test_accuracy.</summary>
    public static List<(int X, double Accuracy)> ReadCurve(string path, string xColumn, string option)
    {
        if (!File.Exists(path)) throw new UsageException($"{option} {path}: file not found.");
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        if (lines.Length == 0) throw new DataException($"{path}: empty.");
        var header = lines[0].Split(',');
        int x = Array.IndexOf(header, xColumn), accuracy = Array.IndexOf(header, "test_accuracy");
        if (x < 0 || accuracy < 0) throw new DataException($"{path}: needs columns {xColumn} and test_accuracy, found {lines[0]}.");
        var result = new List<(int, double)>();
        for (int i = 1; i < lines.Length; i++)
        {
            var cells = lines[i].Split(',');
            if (cells.Length <= Math.Max(x, accuracy)
                || !int.TryParse(cells[x], CultureInfo.InvariantCulture, out var e)
                || !double.TryParse(cells[accuracy], CultureInfo.InvariantCulture, out var a))
                throw new DataException($"{path}: malformed row '{lines[i]}'.");
            result.Add((e, a));
        }
        return result;
    }
}
