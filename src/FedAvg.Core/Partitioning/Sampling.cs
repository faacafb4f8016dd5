namespace FedAvg.Core.Partitioning;

/// <summary>Seeded draws from the distributions the partitioners need (System.Random has none of them).</summary>
public static class Sampling
{
    /// <summary>Standard normal by Box–Muller.</summary>
    public static double Normal(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Gamma(shape, 1) by Marsaglia and Tsang, with the usual boost for shape &lt; 1.</summary>
    public static double Gamma(Random rng, double shape)
    {
        if (shape < 1.0)
            return Gamma(rng, shape + 1.0) * Math.Pow(1.0 - rng.NextDouble(), 1.0 / shape);
        double d = shape - 1.0 / 3.0, c = 1.0 / Math.Sqrt(9.0 * d);
        while (true)
        {
            double x, v;
            do
            {
                x = Normal(rng);
                v = 1.0 + c * x;
            } while (v <= 0);
            v = v * v * v;
            double u = 1.0 - rng.NextDouble();
            if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
            if (Math.Log(u) < 0.5 * x * x + d * (1.0 - v + Math.Log(v))) return d * v;
        }
    }

    /// <summary>Fills <paramref name="result"/> with a draw from the symmetric Dirichlet(α).</summary>
    public static void Dirichlet(Random rng, double alpha, Span<double> result)
    {
        double sum = 0;
        for (int i = 0; i < result.Length; i++) sum += result[i] = Gamma(rng, alpha);
        if (sum <= 0 || double.IsNaN(sum))
        {
            // tiny α can underflow every component: fall back to one label, chosen uniformly
            result.Clear();
            result[rng.Next(result.Length)] = 1;
            return;
        }
        for (int i = 0; i < result.Length; i++) result[i] /= sum;
    }

    /// <summary>Label histogram of one index list, as proportions.</summary>
    public static double[] Histogram(ReadOnlySpan<byte> labels, IEnumerable<int> indices, int classes)
    {
        var counts = new double[classes];
        int n = 0;
        foreach (var i in indices)
        {
            counts[labels[i]]++;
            n++;
        }
        if (n > 0) for (int c = 0; c < classes; c++) counts[c] /= n;
        return counts;
    }

    /// <summary>Total-variation distance between two distributions.</summary>
    public static double TotalVariation(ReadOnlySpan<double> p, ReadOnlySpan<double> q)
    {
        double sum = 0;
        for (int i = 0; i < p.Length; i++) sum += Math.Abs(p[i] - q[i]);
        return sum / 2;
    }
}
