import { describe, expect, it } from 'vitest';
import { defaultCompression, describeCompression } from '../functions/core/pg-dump';

describe('compression', () => {
  it('is gzip level 1 up to pg_dump 15 and zstd level 1 from 16, where pg_dump has it', () => {
    expect(defaultCompression()).toBe('1');
    expect(defaultCompression(13)).toBe('1');
    expect(defaultCompression(15)).toBe('1');
    expect(defaultCompression(16)).toBe('zstd:1');
    expect(defaultCompression(18)).toBe('zstd:1');
  });

  it('is recorded by method and level', () => {
    expect(describeCompression('1')).toBe('gzip:1');
    expect(describeCompression('9')).toBe('gzip:9');
    expect(describeCompression('0')).toBe('none');
    expect(describeCompression('none')).toBe('none');
    expect(describeCompression('zstd:1')).toBe('zstd:1');
    expect(describeCompression('gzip:6')).toBe('gzip:6');
  });
});
